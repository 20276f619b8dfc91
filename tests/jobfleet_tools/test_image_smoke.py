"""The CI image smoke run reproduces the synthesized runtime settings (Docker itself runs in CI only)."""

from __future__ import annotations

import json

import pytest

from jobfleet_contract.batch import job_parameters
from jobfleet_tools.image_smoke import (
    SmokeError,
    _templates,
    batch_command,
    batch_container,
    docker_run_args,
    ecs_container,
    local_environment,
)


@pytest.fixture(scope="module")
def dev_templates(synthesized):
    return _templates(synthesized[0], "dev")


def test_worker_runs_read_only_as_uid_10001_with_an_empty_volume_at_tmp_and_its_health_command(
        dev_templates):
    spec = ecs_container(dev_templates["Compute"], "Worker")
    assert (spec.user, spec.read_only, spec.mount_paths) == ("10001", True, ("/tmp",))
    assert spec.health_command == ("python", "-m", "worker", "health")
    args = docker_run_args(spec, "img", {"A": "1"}, "p")
    assert "--read-only" in args and args[args.index("--user") + 1] == "10001"
    assert args[args.index("--mount") + 1] == "type=volume,src=p-Worker-0,dst=/tmp"
    assert args[args.index("--health-cmd") + 1] == "python -m worker health"
    assert args[-5:] == ["img", "python", "-m", "worker", "run"]


def test_api_and_run_one_get_the_same_runtime_settings(dev_templates):
    api = ecs_container(dev_templates["Compute"], "Api")
    job = batch_container(dev_templates["Batch"])
    for spec in (api, job):
        assert (spec.user, spec.read_only, spec.mount_paths) == ("10001", True, ("/tmp",))
    envelope = json.dumps({"jobId": "j"})
    command = batch_command(job, job_parameters(envelope, 0))  # what the feed function submits
    assert command[:4] == ["python", "-m", "worker", "run-one"] and envelope in command


def test_deploy_time_references_must_have_a_local_value(dev_templates):
    spec = ecs_container(dev_templates["Compute"], "Worker")
    with pytest.raises(SmokeError, match="QUEUE_URL"):
        local_environment(spec, {})
    env = local_environment(spec, {"QUEUE_URL": "q", "DLQ_URL": "d", "STATUS_TABLE": "t",
                                   "RESULTS_BUCKET": "r"})
    assert env["QUEUE_URL"] == "q" and env["HEALTH_FILE"].startswith("/tmp/")
