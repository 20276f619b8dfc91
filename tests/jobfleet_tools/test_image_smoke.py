"""The CI image smoke run reproduces the synthesized runtime settings (Docker itself runs in CI only).

What does not need Docker runs here for real: each container's environment resolved from the real
synthesized templates onto a moto server, and the API checks against `python -m worker api` started
as a plain process with the environment the smoke gives the API container."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobfleet_contract.batch import job_parameters
from jobfleet_tools.image_smoke import (
    REGION,
    ContainerSpec,
    LocalAws,
    SmokeError,
    Stage,
    batch_command,
    batch_container,
    check_api,
    check_worker,
    docker_run_args,
    ecs_container,
    load_stage,
    local_aws,
)
from jobfleet_tools.issuer import LocalIssuer
from jobfleet_tools.local.processes import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev_stage(synthesized):
    return load_stage(synthesized[0], "dev")


def test_worker_runs_read_only_as_uid_10001_with_an_empty_volume_at_tmp_and_its_health_command(dev_stage):
    spec = ecs_container(dev_stage, "Compute", "Worker")
    assert (spec.user, spec.read_only, spec.mount_paths) == ("10001", True, ("/tmp",))
    assert spec.health_command == ("python", "-m", "worker", "health")
    args = docker_run_args(spec, "img", {"A": "1"}, "p")
    assert "--read-only" in args and args[args.index("--user") + 1] == "10001"
    assert args[args.index("--mount") + 1] == "type=volume,src=p-Worker-0,dst=/tmp"
    assert args[args.index("--health-cmd") + 1] == "python -m worker health"
    assert args[-5:] == ["img", "python", "-m", "worker", "run"]


def test_api_and_run_one_get_the_same_runtime_settings(dev_stage):
    api = ecs_container(dev_stage, "Compute", "Api")
    job = batch_container(dev_stage, "Batch")
    for spec in (api, job):
        assert (spec.user, spec.read_only, spec.mount_paths) == ("10001", True, ("/tmp",))
    envelope = json.dumps({"jobId": "j"})
    command = batch_command(job, job_parameters(envelope, 0))  # what the feed function submits
    assert command[:4] == ["python", "-m", "worker", "run-one"] and envelope in command


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_every_deploy_time_value_resolves_to_a_resource_the_templates_name(synthesized, env_name):
    stage = load_stage(synthesized[0], env_name)
    with LocalIssuer() as issuer, local_aws(stage, issuer.url) as aws:
        worker = aws.environment(ecs_container(stage, "Compute", "Worker"))
        api = aws.environment(ecs_container(stage, "Compute", "Api"))
        run_one = aws.environment(batch_container(stage, "Batch"))
        sqs, ecs = aws.client("sqs"), aws.client("ecs")
        queue, dlq = (sqs.get_queue_url(QueueName=f"jobfleet-{env_name}-critical{suffix}")["QueueUrl"]
                      for suffix in ("", "-dlq"))
        assert worker["QUEUE_URL"] == queue == json.loads(api["TIER_QUEUES"])["critical"]
        assert worker["DLQ_URL"] == dlq
        assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["VisibilityTimeout"])[
            "Attributes"]["VisibilityTimeout"] == "360"
        table = f"jobfleet-{env_name}-jobs"
        assert worker["STATUS_TABLE"] == api["STATUS_TABLE"] == run_one["STATUS_TABLE"] == table
        aws.client("dynamodb").describe_table(TableName=table)
        # The results bucket's name is built, not referenced: the same expression means that bucket.
        bucket = f"jobfleet-{env_name}-results-{aws.account}-{REGION}"
        assert worker["RESULTS_BUCKET"] == run_one["RESULTS_BUCKET"] == bucket
        aws.client("s3").head_bucket(Bucket=worker["RESULTS_BUCKET"])
        assert api["AUTH_ISSUER"] == issuer.url and run_one["AWS_DEFAULT_REGION"] == REGION
        (wake,) = json.loads(api["WAKE_SERVICES"]).values()
        (service,) = ecs.describe_services(cluster=wake["cluster"], services=[wake["service"]])["services"]
        assert (service["serviceName"], service["desiredCount"]) == (wake["service"], 0)


def test_fails_naming_a_deploy_time_variable_without_a_local_equivalent(dev_stage):
    spec = ecs_container(dev_stage, "Compute", "Api")
    pool = next(logical_id for logical_id, resource in dev_stage.templates["Compute"]["Resources"].items()
                if resource["Type"] == "AWS::Cognito::UserPool")
    with LocalIssuer() as issuer, local_aws(dev_stage, issuer.url) as aws:
        for reference in ({"Fn::GetAtt": [pool, "Arn"]}, {"Ref": pool}, {"Fn::ImportValue": "elsewhere"},
                          {"Fn::GetStackOutput": {"StackName": "not-in-this-stage", "OutputName": "X"}}):
            grown = dataclasses.replace(spec, environment={**spec.environment, "NEW_REFERENCE": reference})
            with pytest.raises(SmokeError, match=r"^Api: the deploy-time value of NEW_REFERENCE has no"):
                aws.environment(grown)


def _host_environment(spec: ContainerSpec, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The container's environment for a process on this machine: host directories in place of the
    mount paths, and nothing of this machine's environment but PATH and where the code is."""
    host = dict(env)
    for name, value in env.items():
        for mount in spec.mount_paths:
            if value == mount or value.startswith(f"{mount}/"):
                host[name] = str(tmp_path) + value.removeprefix(mount)
    return {**host, "PATH": os.environ["PATH"],
            "PYTHONPATH": os.pathsep.join([str(REPO / "worker_image"), str(REPO)])}


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_worker_checks_pass_against_the_worker_given_the_smokes_environment(synthesized, env_name,
                                                                                  tmp_path):
    stage = load_stage(synthesized[0], env_name)
    spec = ecs_container(stage, "Compute", "Worker")
    assert spec.health_command[0] == "python"
    with LocalIssuer() as issuer, local_aws(stage, issuer.url) as aws:
        env = _host_environment(spec, aws.environment(spec), tmp_path)
        assert env["HEALTH_FILE"] == f"{tmp_path}/worker-health"
        log = tmp_path / "worker.log"
        with log.open("wb") as output:
            worker = subprocess.Popen([sys.executable, *spec.command[1:]], env=env, cwd=tmp_path,
                                      stdout=output, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            check = [sys.executable, *spec.health_command[1:]]
            return subprocess.run(check, env=env, cwd=tmp_path, capture_output=True).returncode == 0

        def stop() -> int | None:
            worker.send_signal(signal.SIGTERM)
            return worker.wait(timeout=60)

        try:
            passed = check_worker(env, aws, healthy, stop, log.read_text)
        finally:
            worker.kill()
            worker.wait(timeout=30)
    assert passed == "worker healthy, a report job done, exit 0 on SIGTERM"


@contextmanager
def _api_process(stage: Stage, aws: LocalAws, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Any]]:
    """`python -m worker api` given the environment the smoke gives the API container; yields its URL,
    that environment and the `exited` callback check_api takes."""
    spec = ecs_container(stage, "Compute", "Api")
    port = free_port()  # the container's port (8080) may be taken on this machine
    env = {**_host_environment(spec, aws.environment(spec), tmp_path), "PORT": str(port),
           "API_HOST": "127.0.0.1"}
    log = tmp_path / "api.log"
    with log.open("wb") as output:
        api = subprocess.Popen([sys.executable, *spec.command[1:]], env=env, cwd=tmp_path,
                               stdout=output, stderr=subprocess.STDOUT)

    def exited() -> str | None:
        code = api.poll()
        return None if code is None else f"exited ({code}): {log.read_text()[-500:]}"

    try:
        yield f"http://127.0.0.1:{port}", env, exited
    finally:
        api.terminate()
        api.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_api_checks_pass_against_the_api_given_the_smokes_environment(synthesized, env_name, tmp_path):
    stage = load_stage(synthesized[0], env_name)
    with (LocalIssuer() as issuer, local_aws(stage, issuer.url) as aws,
          _api_process(stage, aws, tmp_path) as (url, env, exited)):
        passed = check_api(url, env, aws, issuer, exited)
    assert "401 without a token" in passed and "accepted (202) and read back (queued)" in passed, passed
    assert "the standard tier's service woken" in passed, passed
    assert issuer.jwks_requests >= 1


@pytest.mark.slow
def test_the_api_checks_fail_on_tokens_the_api_does_not_trust(dev_stage, tmp_path):
    with (LocalIssuer() as issuer, LocalIssuer() as stranger, local_aws(dev_stage, issuer.url) as aws,
          _api_process(dev_stage, aws, tmp_path) as (url, env, exited),
          pytest.raises(SmokeError, match=r"^api: POST /jobs answered 401, expected 202: .*invalid-token")):
        check_api(url, env, aws, stranger, exited)
