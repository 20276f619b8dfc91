"""GitHub Actions workflows shipped for users: schema-valid, OIDC only, gated promotion.

actionlint cannot be installed here (its PyPI wrapper downloads the binary from GitHub), so the
workflows are validated against the GitHub workflow JSON schema vendored in check-jsonschema,
plus the intent checks below.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _on(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as True.
    return workflow.get("on", workflow.get(True))


def test_workflows_match_the_github_schema():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 4
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml", "deploy-environment.yml",
                                  "worker-image.yml"])
def test_no_long_lived_aws_keys(name):
    text = (WORKFLOWS / name).read_text()
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text


def test_pull_request_runs_the_suite_synth_and_diff():
    workflow = _load("pull-request.yml")
    assert "pull_request" in _on(workflow)
    steps = workflow["jobs"]["test"]["steps"]
    assert any("make test" in step.get("run", "") for step in steps)
    diff = workflow["jobs"]["diff"]
    assert diff["permissions"]["id-token"] == "write"
    assert diff["strategy"]["matrix"]["env"] == ["dev", "staging", "prod"]
    runs = " ".join(step.get("run", "") for step in diff["steps"])
    assert "make synth" in runs and "cdk diff" in runs and "GITHUB_STEP_SUMMARY" in runs
    assert any("configure-aws-credentials" in step.get("uses", "") for step in diff["steps"])


def test_pull_request_lints_builds_and_smoke_runs_the_image():
    steps = _load("pull-request.yml")["jobs"]["image"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any(r.startswith(".venv/bin/hadolint worker_image/Dockerfile") for r in runs)
    build = next(i for i, r in enumerate(runs) if r.startswith("docker build"))
    smoke = next(i for i, r in enumerate(runs) if "-m jobfleet_tools image-smoke" in r)
    assert build < smoke and "--platform linux/amd64" in runs[build]
    # The build context is the repository root (the image ships jobfleet_contract too).
    assert runs[build].endswith("--file worker_image/Dockerfile --tag jobfleet-worker:ci .")
    # The smoke run's arguments are the tool's: the image just built, the environment just synthesized.
    from jobfleet_tools.image_smoke import parse_args

    command = shlex.split(runs[smoke])
    args = parse_args(command[command.index("image-smoke") + 1:])
    assert args.image == "jobfleet-worker:ci" and str(args.assembly) == "cdk.out"
    assert any(r == f"make synth ENV={args.env}" for r in runs[:smoke])


def test_deploy_promotes_dev_then_staging_then_prod():
    workflow = _load("deploy.yml")
    assert _on(workflow)["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["dev"]["needs"] == "test"
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    for env in ("dev", "staging", "prod"):
        assert jobs[env]["with"]["environment"] == env
        assert jobs[env]["permissions"]["id-token"] == "write"


def test_each_deploy_runs_in_its_github_environment_through_oidc():
    workflow = _load("deploy-environment.yml")
    job = workflow["jobs"]["deploy"]
    # The GitHub environment carries the approval gate and the role ARN.
    assert job["environment"] == "${{ inputs.environment }}"
    credentials = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert credentials and credentials[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert any("cdk deploy" in step.get("run", "") for step in job["steps"])


def test_worker_image_is_built_with_buildx_for_the_configured_platforms_and_deployed_by_digest():
    workflow = _load("worker-image.yml")
    build = workflow["jobs"]["build"]
    assert build["permissions"]["id-token"] == "write"
    steps = {step.get("id") or step.get("name") or step["uses"]: step for step in build["steps"]}
    assert "python -m jobfleet_tools platforms" in steps["platforms"]["run"]
    assert any("docker/setup-buildx-action" in step.get("uses", "") for step in build["steps"])
    push = steps["build"]
    assert push["uses"].startswith("docker/build-push-action@")
    assert push["with"]["platforms"] == "${{ steps.platforms.outputs.platforms }}"
    assert push["with"]["file"] == "worker_image/Dockerfile" and push["with"]["push"] is True
    credentials = [s for s in build["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert credentials[0]["with"]["role-to-assume"] == "${{ vars.AWS_IMAGE_ROLE_ARN }}"
    assert any("amazon-ecr-login" in step.get("uses", "") for step in build["steps"])
    assert "@${DIGEST}" in steps["reference"]["run"]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["uses"] == "./.github/workflows/deploy-environment.yml"
    assert deploy["with"]["image"] == "${{ needs.build.outputs.image }}"
    inputs = _on(_load("deploy-environment.yml"))["workflow_call"]["inputs"]
    assert inputs["image"]["required"] is False
    synth = [s for s in _load("deploy-environment.yml")["jobs"]["deploy"]["steps"]
             if "make synth" in s.get("run", "")]
    assert 'IMAGE="$IMAGE"' in synth[0]["run"] and synth[0]["env"]["IMAGE"] == "${{ inputs.image }}"


def test_platforms_command_prints_what_the_environment_runs(tmp_path):
    from jobfleet_config.config import load_environment
    from jobfleet_tools.platforms import image_platforms, main
    from tests.conftest import team_config_dir

    assert image_platforms(load_environment("dev")) == ["linux/amd64"]
    team = load_environment("dev", team_config_dir(tmp_path))  # its standard tier is arm64
    assert image_platforms(team) == ["linux/amd64", "linux/arm64"]
    assert main(["nope"]) == 2
