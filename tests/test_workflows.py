"""GitHub Actions workflows shipped for users: schema-valid, OIDC only, gated promotion.

actionlint cannot be installed here (its PyPI wrapper downloads the binary from GitHub), so the
workflows are validated against the GitHub workflow JSON schema vendored in check-jsonschema,
plus the intent checks below.
"""

from __future__ import annotations

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
    assert len(files) == 3
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml", "deploy-environment.yml"])
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
