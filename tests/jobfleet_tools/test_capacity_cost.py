"""Cost estimate: counts from the synthesized templates, prices from the dated table, both columns."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobfleet_tools.capacity import cost, cost_cli
from jobfleet_tools.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def outdir(synthesized) -> Path:
    return Path(synthesized[0])


@pytest.fixture(scope="module")
def prices():
    return cost.load_prices()


def test_price_table_is_dated_one_region_and_names_its_sources(prices):
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", prices["as_of"])
    assert prices["region"] == "us-east-1"
    assert prices["sources"] and all(s.startswith("https://aws.amazon.com/") for s in prices["sources"])


@pytest.mark.parametrize("env", ENVS)
def test_inventory_counts_what_synth_produced(outdir, stages, env):
    config = stages[env].config
    inventory = cost.inventory_from_templates(cost.stage_templates(outdir, env))
    assert inventory.nat_gateways == config.network.nat_gateways
    endpoints = cost.INTERFACE_ENDPOINTS * config.network.max_azs if config.network.vpc_endpoints else 0
    assert inventory.interface_endpoint_azs == endpoints
    assert inventory.load_balancers == 1 and inventory.dashboards == 1 and inventory.ecs_clusters == 1
    assert inventory.ecs_services == 1 + len(config.service_tiers)
    # The alarm topic's key, the queues' key, and one log key in each stack that has log groups
    # (network flow logs, compute, batch, operations) when logs are encrypted with a CMK.
    log_keys = 4 if config.app.log_encryption == "kms" else 0
    assert inventory.kms_keys == (2 if config.queues.encryption == "kms" else 1) + log_keys
    # Every alarm's metrics, plus two alarms per target-tracking policy (backlog per service tier
    # with two metrics each; API CPU and requests with one each).
    assert inventory.alarm_metrics > 4 * len(config.service_tiers)


def test_fixed_cost_of_dev_by_hand(outdir, stages, prices):
    config = stages["dev"].config
    est = cost.estimate(config, cost.inventory_from_templates(cost.stage_templates(outdir, "dev")), prices)
    lines = {line.item: line.monthly for line in est.fixed}
    assert lines["NAT gateways"] == pytest.approx(1 * 0.045 * 730)
    assert lines["AWS API traffic via NAT"] == pytest.approx(50 * 0.045)
    assert lines["Application Load Balancer"] == pytest.approx((0.0225 + 0.008) * 730)
    # API 1 x (0.25 vCPU, 0.5 GB) + critical 1 x (0.5 vCPU, 1 GB), all FARGATE.
    assert lines["Always-on Fargate tasks"] == pytest.approx(
        730 * (0.25 * 0.04048 + 0.5 * 0.004445 + 0.5 * 0.04048 + 1 * 0.004445))
    assert est.fixed_total == pytest.approx(sum(lines.values()))
    assert est.single_box.monthly == pytest.approx(0.252 * 730)  # seed 000: ~$180
    # Flipping vpc_endpoints on: 4 interface endpoints x 2 AZs, traffic at $0.01 instead of $0.045.
    assert est.endpoints_alternative.monthly == pytest.approx(8 * 0.01 * 730 + 50 * (0.01 - 0.045))


def test_endpoints_replace_nat_traffic_in_prod(outdir, stages, prices):
    est = cost.estimate(stages["prod"].config,
                        cost.inventory_from_templates(cost.stage_templates(outdir, "prod")), prices)
    items = [line.item for line in est.fixed]
    assert "VPC interface endpoints" in items and "AWS API traffic via endpoints" in items
    assert "AWS API traffic via NAT" not in items
    assert est.endpoints_alternative.item == "network.vpc_endpoints = false"
    assert est.endpoints_alternative.monthly < 0


@pytest.mark.parametrize("env", ENVS)
def test_cost_command_prints_both_columns(outdir, env, capsys):
    assert cost_cli.main(["--env", env, "--trace", "weekday", "--cdk-out", str(outdir)]) == 0
    out = capsys.readouterr().out
    assert f"JobFleet {env}" in out and "single box" in out
    assert "single r5.xlarge (seed 000)" in out and "$183.96" in out
    assert "Fargate workers: standard" in out and "Batch jobs: batch" in out
    total = next(line for line in out.splitlines() if line.startswith("| **total per month**"))
    ours, box = re.findall(r"\$[\d,]+\.\d\d", total)
    assert box == "$183.96" and ours != box
    assert "vpc_endpoints" in out


def test_variable_cost_scales_the_trace_to_a_month(outdir, stages, prices):
    from jobfleet_tools.capacity.simulate import simulate
    from jobfleet_tools.capacity.trace import load

    config = stages["prod"].config
    inventory = cost.inventory_from_templates(cost.stage_templates(outdir, "prod"))
    day = load("weekday")
    results = simulate(config, day, seed=1)
    est = cost.estimate(config, inventory, prices, results, day.minutes / 60, "weekday")
    batch = next(r for r in results if r.name == "batch")
    line = next(line for line in est.variable if line.item == "Batch jobs: batch")
    expected = batch.vcpu * 730 / (day.minutes / 60) * (
        batch.spot_task_hours * prices["ec2"]["spot_vcpu_hour"]
        + batch.on_demand_task_hours * prices["ec2"]["on_demand_vcpu_hour"])
    assert line.monthly == pytest.approx(expected)


def test_synth_summary_has_one_fixed_cost_line_per_environment(outdir):
    text = summarize(outdir)
    lines = [line for line in text.splitlines() if "estimated fixed cost:" in line]
    assert len(lines) == len(ENVS)
    assert all(re.search(r"\$[\d,]+\.\d\d/month", line) for line in lines)


def test_cost_bad_environment_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "jobfleet_tools", "cost", "--env", "qa"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_cost_without_a_synthesized_stage_says_to_synth(tmp_path, capsys):
    assert cost_cli.main(["--env", "dev", "--cdk-out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make synth" in err
