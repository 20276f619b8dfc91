"""The CDK entry point as users run it: real subprocesses, no AWS credentials, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env_without_aws(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


def _run_app(tmp_path: Path, context: dict, **extra: str) -> subprocess.CompletedProcess:
    """Run the app the way the CDK CLI does (cdk.json's command, CDK_OUTDIR, CDK_CONTEXT_JSON)."""
    env = _env_without_aws(CDK_OUTDIR=str(tmp_path / "out"), CDK_CONTEXT_JSON=json.dumps(context),
                           **extra)
    return subprocess.run([sys.executable, "-m", "cdk_app.app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_synth_one_environment_with_every_aws_variable_unset(tmp_path):
    """No credentials, no region, no endpoint: synth still works (no lookups, no STS)."""
    assert not any(k.startswith("AWS_") for k in _env_without_aws())
    result = _run_app(tmp_path, {"env": "dev"}, HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    stages = [a for a in manifest["artifacts"].values() if a["type"] == "cdk:cloud-assembly"]
    assert [s["properties"]["directoryName"] for s in stages] == ["assembly-dev"]
    # The shipped dev environment runs the examples: synth says so in one line.
    assert ("warning: cdk_app/environments/dev.toml: tiers[critical,standard,batch].handlers = []: "
            "environment 'dev' still runs JobFleet's example handlers") in result.stderr


def test_fails_on_unknown_environment_with_known_names(tmp_path):
    result = _run_app(tmp_path, {"env": "qa"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: -c env: env = 'qa': one of dev, prod, staging")
    assert "Traceback" not in result.stderr


def test_fails_on_bad_config_with_one_line_and_no_traceback(tmp_path):
    config_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "cdk_app" / "environments", config_dir)
    (config_dir / "dev.toml").write_text('[[tiers]]\nname = "critical"\nmin_tasks = 9\nmax_tasks = 3\n')
    result = _run_app(tmp_path, {}, JOBFLEET_CONFIG_DIR=str(config_dir))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "dev.toml: tiers[critical].min_tasks = 9: <= max_tasks (3)" in lines[0]
    assert "Traceback" not in result.stderr


def test_fails_on_an_image_context_that_is_not_a_prebuilt_reference(tmp_path):
    result = _run_app(tmp_path, {"env": "dev", "image": "worker_image"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: -c image: image = 'worker_image': a prebuilt image reference "
        "<registry>/<repository>@sha256:<digest>")


@pytest.mark.slow
def test_cdk_cli_synth_fails_on_bad_config(tmp_path):
    """Through the pinned CDK CLI, as `make synth` runs it."""
    npx = shutil.which("npx")
    if npx is None or not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the pinned CDK CLI is missing: run `make test` (it runs npm ci)")
    config_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "cdk_app" / "environments", config_dir)
    (config_dir / "prod.toml").write_text('[app]\naccount = "12-34"\n')
    result = subprocess.run(
        [npx, "--no-install", "cdk", "synth", "--quiet", "--output", str(tmp_path / "out")],
        cwd=ROOT, env=_env_without_aws(JOBFLEET_CONFIG_DIR=str(config_dir)),
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "prod.toml: app.account = '12-34': a string matching" in result.stderr
    assert "Traceback" not in result.stderr


def test_fails_on_a_pinned_region_aws_cdk_lib_does_not_know(tmp_path):
    """The ALB log-delivery account is looked up per region at synth: an unknown region fails
    here, in one line, instead of at deploy."""
    from cdk_app.app import select_environments
    from jobfleet_config.config import ConfigError

    config_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "cdk_app" / "environments", config_dir)
    (config_dir / "prod.toml").write_text(
        (config_dir / "prod.toml").read_text().replace('region = "us-east-1"', 'region = "xx-nowhere-9"'))
    with pytest.raises(ConfigError) as info:
        select_environments("prod", config_dir)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(config_dir / "prod.toml"))
    assert "app.region = 'xx-nowhere-9': a region aws-cdk-lib 2." in message
    assert [c.app.region for c in select_environments(None)] == ["", "us-east-1", "us-east-1"]
