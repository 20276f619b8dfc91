"""Monthly cost of one environment: a fixed baseline from what synth produced, a variable part from
the simulated task-hours, next to the seeds' single box.

Counted resources (NAT gateways, VPC endpoints, load balancers, alarms and the metrics they
evaluate, KMS keys, dashboards, ECS services) come from the synthesized templates (`cdk.out`), so
the estimate follows whatever the stacks create. Always-on tasks, traffic and log volume come from the config.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from jobfleet_config.config import EnvironmentConfig

from .simulate import TierResult

PRICES_FILE = Path(__file__).parent / "prices-us-east-1.toml"
# network.vpc_endpoints = true creates these interface endpoints, one network interface per AZ
# (stacks/constructs/vpc_endpoints.py; a template test keeps the two in step).
INTERFACE_ENDPOINTS = 4
# SQS requests per job (send, receive, delete) and per task-hour of idle long polling (20 s).
SQS_REQUESTS_PER_JOB = 3
SQS_POLLS_PER_TASK_HOUR = 180
# Status-table writes per job: queued (API), running and finished (worker).
STATUS_WRITES_PER_JOB = 3


@dataclasses.dataclass(frozen=True)
class Inventory:
    """What the templates of one environment contain that has a monthly price."""

    nat_gateways: int = 0
    interface_endpoint_azs: int = 0
    load_balancers: int = 0
    alarm_metrics: int = 0
    kms_keys: int = 0
    dashboards: int = 0
    ecs_services: int = 0
    ecs_clusters: int = 0


def inventory_from_templates(templates: list[dict[str, Any]]) -> Inventory:
    counts = dict.fromkeys((f.name for f in dataclasses.fields(Inventory)), 0)
    for template in templates:
        for resource in template.get("Resources", {}).values():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::EC2::NatGateway":
                counts["nat_gateways"] += 1
            elif kind == "AWS::EC2::VPCEndpoint" and props.get("VpcEndpointType") == "Interface":
                counts["interface_endpoint_azs"] += len(props.get("SubnetIds", []))
            elif kind == "AWS::ElasticLoadBalancingV2::LoadBalancer":
                counts["load_balancers"] += 1
            elif kind == "AWS::CloudWatch::Alarm":
                counts["alarm_metrics"] += _alarm_metrics(props)
            elif kind == "AWS::ApplicationAutoScaling::ScalingPolicy":
                counts["alarm_metrics"] += _target_tracking_alarm_metrics(props)
            elif kind == "AWS::KMS::Key":
                counts["kms_keys"] += 1
            elif kind == "AWS::CloudWatch::Dashboard":
                counts["dashboards"] += 1
            elif kind == "AWS::ECS::Service":
                counts["ecs_services"] += 1
            elif kind == "AWS::ECS::Cluster":
                counts["ecs_clusters"] += 1
    return Inventory(**counts)


def _alarm_metrics(props: dict[str, Any]) -> int:
    if "Metrics" in props:
        return sum(1 for query in props["Metrics"] if "MetricStat" in query)
    return 1


def _target_tracking_alarm_metrics(props: dict[str, Any]) -> int:
    """Application Auto Scaling creates two alarms (high, low) per target-tracking policy."""
    if props.get("PolicyType") != "TargetTrackingScaling":
        return 0
    spec = props["TargetTrackingScalingPolicyConfiguration"]
    metrics = spec.get("CustomizedMetricSpecification", {}).get("Metrics")
    return 2 * (sum(1 for query in metrics if "MetricStat" in query) if metrics else 1)


def stage_templates(outdir: Path, env: str) -> list[dict[str, Any]] | None:
    """The templates of stage `env` in a cloud assembly, or None when it has no such stage."""
    manifest_file = outdir / "manifest.json"
    if not manifest_file.exists():
        return None
    manifest = json.loads(manifest_file.read_text())
    for stage_id, artifact in manifest["artifacts"].items():
        props = artifact.get("properties", {})
        if artifact["type"] != "cdk:cloud-assembly" or props.get("displayName", stage_id) != env:
            continue
        stage_dir = outdir / props["directoryName"]
        stage_manifest = json.loads((stage_dir / "manifest.json").read_text())
        return [json.loads((stage_dir / a["properties"]["templateFile"]).read_text())
                for a in stage_manifest["artifacts"].values()
                if a["type"] == "aws:cloudformation:stack"]
    return None


# --- the estimate ----------------------------------------------------------------------------


def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


@dataclasses.dataclass(frozen=True)
class Line:
    item: str
    monthly: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Estimate:
    env: str
    region: str
    as_of: str
    fixed: tuple[Line, ...]
    variable: tuple[Line, ...]
    single_box: Line
    endpoints_alternative: Line  # what flipping network.vpc_endpoints would change
    trace: str | None

    @property
    def fixed_total(self) -> float:
        return sum(line.monthly for line in self.fixed)

    @property
    def variable_total(self) -> float:
        return sum(line.monthly for line in self.variable)

    @property
    def total(self) -> float:
        return self.fixed_total + self.variable_total


def _fargate_month(prices: dict, vcpu: float, memory_gb: float, tasks: float, spot: float) -> float:
    f = prices["fargate"]
    on_demand = (tasks - spot) * (vcpu * f["vcpu_hour"] + memory_gb * f["gb_hour"])
    spot_cost = spot * (vcpu * f["spot_vcpu_hour"] + memory_gb * f["spot_gb_hour"])
    return (on_demand + spot_cost) * prices["hours_per_month"]


def _network_lines(config: EnvironmentConfig, inventory: Inventory, prices: dict,
                   endpoint_azs: int) -> list[Line]:
    net, hours = prices["network"], prices["hours_per_month"]
    gb = config.capacity.aws_api_gb_per_month
    lines = [Line("NAT gateways", inventory.nat_gateways * net["nat_gateway_hour"] * hours,
                  f"{inventory.nat_gateways} x {hours} h")]
    if endpoint_azs:
        lines.append(Line("VPC interface endpoints", endpoint_azs * net["interface_endpoint_hour"] * hours,
                          f"{endpoint_azs} endpoint-AZs; S3/DynamoDB gateways free"))
        lines.append(Line("AWS API traffic via endpoints", gb * net["interface_endpoint_gb"],
                          f"{gb:g} GB"))
    elif inventory.nat_gateways:
        lines.append(Line("AWS API traffic via NAT", gb * net["nat_gb"], f"{gb:g} GB"))
    return lines


def estimate(config: EnvironmentConfig, inventory: Inventory, prices: dict[str, Any],
             results: list[TierResult] | None = None, trace_hours: float = 0.0,
             trace: str | None = None) -> Estimate:
    hours, cw = prices["hours_per_month"], prices["cloudwatch"]
    always_on = _fargate_month(prices, config.api.cpu / 1024, config.api.memory_mib / 1024,
                               config.api.min_tasks, 0)
    for tier in config.service_tiers:
        spot = _spot_share(tier.fargate_spot_weight, tier.min_tasks)
        always_on += _fargate_month(prices, tier.cpu / 1024, tier.memory_mib / 1024,
                                    tier.min_tasks, spot)
    min_workers = sum(t.min_tasks for t in config.service_tiers)
    ci_metrics = (inventory.ecs_clusters * cw["container_insights_cluster_metrics"]
                  + inventory.ecs_services * cw["container_insights_service_metrics"])
    log_gb = config.capacity.log_gb_per_month
    stored_gb = log_gb * config.app.log_retention_days / 30
    fixed = [
        *_network_lines(config, inventory, prices, inventory.interface_endpoint_azs),
        Line("Application Load Balancer", inventory.load_balancers * hours
             * (prices["network"]["alb_hour"]
                + prices["network"]["alb_lcus"] * prices["network"]["alb_lcu_hour"]),
             f"{inventory.load_balancers} x {prices['network']['alb_lcus']} LCU"),
        Line("Always-on Fargate tasks", always_on,
             f"API {config.api.min_tasks} + workers {min_workers}"),
        Line("Container Insights", ci_metrics * cw["metric_month"], f"{ci_metrics} metrics"),
        Line("KMS keys", inventory.kms_keys * prices["kms"]["key_month"], f"{inventory.kms_keys} key(s)"),
        Line("CloudWatch alarms", inventory.alarm_metrics * cw["alarm_metric_month"],
             f"{inventory.alarm_metrics} alarm metrics"),
        Line("CloudWatch dashboard", inventory.dashboards * cw["dashboard_month"],
             f"{inventory.dashboards}"),
        Line("CloudWatch Logs", log_gb * cw["logs_ingest_gb"] + stored_gb * cw["logs_storage_gb_month"],
             f"{log_gb:g} GB in, {stored_gb:.1f} GB kept"),
    ]
    variable = _variable_lines(config, prices, results, trace_hours) if results else []
    # The other choice of network.vpc_endpoints, everything else equal.
    other_azs = 0 if inventory.interface_endpoint_azs else INTERFACE_ENDPOINTS * config.network.max_azs
    current = sum(line.monthly for line in _network_lines(config, inventory, prices,
                                                          inventory.interface_endpoint_azs))
    other = sum(line.monthly for line in _network_lines(config, inventory, prices, other_azs))
    flip = "false" if inventory.interface_endpoint_azs else "true"
    box = prices["ec2"]
    return Estimate(
        env=config.name, region=prices["region"], as_of=prices["as_of"], fixed=tuple(fixed),
        variable=tuple(variable),
        single_box=Line(f"single {box['single_box_type']} (seed 000)", box["single_box_hour"] * hours,
                        f"{hours} h on demand"),
        endpoints_alternative=Line(
            f"network.vpc_endpoints = {flip}", other - current,
            f"at {config.capacity.aws_api_gb_per_month:g} GB/month of AWS API traffic"),
        trace=trace)


def _spot_share(weight: int, tasks: float) -> float:
    return 0.0 if weight == 0 or tasks <= 1 else (tasks - 1) * weight / (1 + weight)


def _variable_lines(config: EnvironmentConfig, prices: dict, results: list[TierResult],
                    trace_hours: float) -> list[Line]:
    scale = prices["hours_per_month"] / trace_hours
    lines = []
    jobs = task_hours = 0.0
    for result in results:
        tier = config.tier(result.name)
        jobs += result.jobs
        task_hours += result.task_hours
        if result.runtime == "service":
            # Above the always-on minimum (counted in the fixed part).
            base_spot = _spot_share(tier.fargate_spot_weight, tier.min_tasks) * trace_hours
            spot = max(0.0, result.spot_task_hours - base_spot)
            total = max(0.0, result.task_hours - tier.min_tasks * trace_hours)
            monthly = _fargate_month(prices, result.vcpu, result.memory_gb, total * scale,
                                     min(spot, total) * scale) / prices["hours_per_month"]
            lines.append(Line(f"Fargate workers: {tier.name}", monthly,
                              f"{total * scale:.0f} task-h above min, {spot * scale:.0f} on Spot"))
        else:
            spot_h, od_h = result.spot_task_hours * scale, result.on_demand_task_hours * scale
            if config.batch.compute == "ec2-spot":
                ec2 = prices["ec2"]
                monthly = result.vcpu * (spot_h * ec2["spot_vcpu_hour"] + od_h * ec2["on_demand_vcpu_hour"])
            else:
                monthly = _fargate_month(prices, result.vcpu, result.memory_gb, spot_h + od_h,
                                         spot_h) / prices["hours_per_month"]
            lines.append(Line(f"Batch jobs: {tier.name}", monthly,
                              f"{result.vcpu * (spot_h + od_h):.0f} vCPU-h, "
                              f"{result.vcpu * od_h:.0f} on demand"))
    requests = (jobs * SQS_REQUESTS_PER_JOB + task_hours * SQS_POLLS_PER_TASK_HOUR) * scale
    lines.append(Line("SQS requests", requests / 1e6 * prices["sqs"]["million_requests"],
                      f"{requests / 1e6:.2f} M"))
    writes = jobs * STATUS_WRITES_PER_JOB * scale
    lines.append(Line("DynamoDB status writes", writes / 1e6 * prices["dynamodb"]["million_write_units"],
                      f"{writes / 1e6:.2f} M"))
    return lines


def money(value: float) -> str:
    return f"${value:,.2f}"


def format_estimate(est: Estimate) -> str:
    """A Markdown table: JobFleet's lines, then the single box beside the total."""
    width = max(len(line.item) for line in (*est.fixed, *est.variable, est.single_box)) + 2
    ours_title = f"JobFleet {est.env}"
    ours_width = max(len(ours_title), 12)
    rows = [f"Monthly cost, {est.env} ({est.region} list prices as of {est.as_of})"
            + (f", variable part from trace {est.trace}" if est.trace else ""),
            "",
            f"| {'item':<{width}} | {ours_title:>{ours_width}} | {'single box':>12} | note |",
            f"|{'-' * (width + 2)}|{'-' * (ours_width + 1)}:|{'-' * 13}:|------|"]

    def row(item: str, ours: str, box: str, note: str = "") -> None:
        rows.append(f"| {item:<{width}} | {ours:>{ours_width}} | {box:>12} | {note} |")

    for line in est.fixed:
        row(line.item, money(line.monthly), "", line.note)
    row("**fixed**", money(est.fixed_total), "")
    for line in est.variable:
        row(line.item, money(line.monthly), "", line.note)
    if est.variable:
        row("**variable**", money(est.variable_total), "")
    row(est.single_box.item, "", money(est.single_box.monthly), est.single_box.note)
    row("**total per month**", money(est.total) if est.variable else money(est.fixed_total) + " +",
        money(est.single_box.monthly), "" if est.variable else "variable part needs --trace")
    delta = est.endpoints_alternative
    rows.append("")
    rows.append(f"{delta.item} would change the fixed cost by {'+' if delta.monthly >= 0 else '-'}"
                f"{money(abs(delta.monthly))} a month ({delta.note}).")
    return "\n".join(rows)


def fixed_summary_line(est: Estimate) -> str:
    """The line `make synth` prints per environment."""
    return (f"  estimated fixed cost: {money(est.fixed_total)}/month ({est.region} list prices "
            f"{est.as_of}; `python -m jobfleet_tools cost --env {est.env}` for the breakdown)")
