"""Run the worker image the way ECS and AWS Batch will run it (CI's image job; needs Docker).

    python -m jobfleet_tools image-smoke --image IMAGE [--assembly cdk.out] [--env dev]

Every setting that decides whether a container can start comes from the synthesized templates,
not from this file: the user, the read-only root filesystem, the mount points (each gets a fresh,
empty, root-owned Docker volume — like a Fargate bind mount, it is populated from the image only
where the image declares a matching VOLUME), the command and the health command. Deploy-time
references in the environment (queue URLs, the table name) are replaced by resources in a moto
server on this machine, which the containers reach over the host network.

Three runs: a worker of the tier that `report` jobs go to (healthy by its own health command,
processes one job that writes to /tmp, exits 0 on SIGTERM), the API (`/healthz`, `POST /jobs`),
and `run-one` of the first batch tier (exit 0). Any failure prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobfleet_contract.batch import job_parameters

HOST = "127.0.0.1"
API_PORT = 8080


class SmokeError(RuntimeError):
    """One line: which container, what it did instead of what it should."""


@dataclass(frozen=True)
class ContainerSpec:
    """What the template says about one container (an ECS container or a Batch job container)."""

    name: str
    user: str
    read_only: bool
    mount_paths: tuple[str, ...]
    command: tuple[str, ...]
    health_command: tuple[str, ...]  # the CMD form without "CMD"; empty = no health check
    environment: dict[str, Any]  # values that are not strings are deploy-time references


def _templates(assembly: Path, env: str) -> dict[str, dict]:
    """{stack id (Network, Compute, ...): template} of one environment's stage."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    artifact = manifest["artifacts"][f"assembly-{env}"]
    stage_dir = assembly / artifact["properties"]["directoryName"]
    stage = json.loads((stage_dir / "manifest.json").read_text())
    templates = {}
    for stack in stage["artifacts"].values():
        if stack["type"] == "aws:cloudformation:stack":
            stack_id = stack["displayName"].split("/")[-1]
            templates[stack_id] = json.loads((stage_dir / stack["properties"]["templateFile"]).read_text())
    return templates


def _resources(template: dict, resource_type: str) -> list[dict]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == resource_type]


def ecs_container(template: dict, name: str) -> ContainerSpec:
    """The first container called `name` in the template's ECS task definitions."""
    for task in _resources(template, "AWS::ECS::TaskDefinition"):
        for container in task["ContainerDefinitions"]:
            if container["Name"] == name:
                health = container.get("HealthCheck", {}).get("Command", [])
                if health and health[0] != "CMD":
                    raise SmokeError(f"{name}: health command {health} is not in CMD form")
                return ContainerSpec(
                    name=name, user=container.get("User", ""),
                    read_only=bool(container.get("ReadonlyRootFilesystem")),
                    mount_paths=tuple(m["ContainerPath"] for m in container.get("MountPoints", [])),
                    command=tuple(container.get("Command", [])),
                    health_command=tuple(health[1:]),
                    environment={e["Name"]: e["Value"] for e in container.get("Environment", [])})
    raise SmokeError(f"no ECS container named {name!r} in the template")


def batch_container(template: dict, index: int = 0) -> ContainerSpec:
    """The container of the template's `index`-th Batch job definition."""
    props = _resources(template, "AWS::Batch::JobDefinition")[index]["ContainerProperties"]
    return ContainerSpec(
        name="run-one", user=props.get("User", ""),
        read_only=bool(props.get("ReadonlyRootFilesystem")),
        mount_paths=tuple(m["ContainerPath"] for m in props.get("MountPoints", [])),
        command=tuple(props["Command"]), health_command=(),
        environment={e["Name"]: e["Value"] for e in props.get("Environment", [])})


def local_environment(spec: ContainerSpec, local: dict[str, str]) -> dict[str, str]:
    """The container's environment with each deploy-time reference replaced from `local`."""
    env = {}
    for name, value in spec.environment.items():
        if isinstance(value, str):
            env[name] = value
        elif name in local:
            env[name] = local[name]
        else:
            raise SmokeError(f"{spec.name}: no local value for the deploy-time variable {name}; "
                             "add it to jobfleet_tools/image_smoke.py")
    return env


def docker_run_args(spec: ContainerSpec, image: str, env: dict[str, str], volume_prefix: str,
                    command: list[str] | None = None) -> list[str]:
    """`docker run` arguments reproducing the task definition's runtime settings."""
    args = ["docker", "run", "--detach", "--network", "host", "--name", f"{volume_prefix}-{spec.name}"]
    if spec.read_only:
        args.append("--read-only")
    if spec.user:
        args += ["--user", spec.user]
    for index, path in enumerate(spec.mount_paths):
        # A named volume that does not exist yet: created empty and root-owned; Docker, like ECS,
        # copies content, owner and mode in only from a VOLUME the image declares at that path.
        args += ["--mount", f"type=volume,src={volume_prefix}-{spec.name}-{index},dst={path}"]
    if spec.health_command:
        args += ["--health-cmd", shlex.join(spec.health_command), "--health-interval", "5s",
                 "--health-retries", "3", "--health-start-period", "30s"]
    for name, value in sorted(env.items()):
        args += ["--env", f"{name}={value}"]
    args.append(image)
    args += command if command is not None else list(spec.command)
    return args


def batch_command(spec: ContainerSpec, parameters: dict[str, str]) -> list[str]:
    """The job's command with Batch's `Ref::name` placeholders filled from `parameters`."""
    filled = []
    for part in spec.command:
        if part.startswith("Ref::"):
            name = part.removeprefix("Ref::")
            if name not in parameters:
                raise SmokeError(f"run-one: no value for the job parameter {name}")
            filled.append(parameters[name])
        else:
            filled.append(part)
    return filled


def _docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode:
        raise SmokeError(f"docker {' '.join(args[:2])} failed: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def _wait(what: str, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise SmokeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _exit_code(container: str) -> int | None:
    state = json.loads(_docker("inspect", "--format", "{{json .State}}", container))
    return None if state["Running"] else state["ExitCode"]


def _run(spec: ContainerSpec, image: str, env: dict[str, str], prefix: str,
         command: list[str] | None = None) -> str:
    return _docker(*docker_run_args(spec, image, env, prefix, command)[1:])


def smoke(image: str, assembly: Path, env_name: str) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from jobfleet_tools.local.processes import free_port

    templates = _templates(assembly, env_name)
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    endpoint = f"http://{HOST}:{port}"
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "smoke", "AWS_SECRET_ACCESS_KEY": "smoke",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    session = boto3.Session(aws_access_key_id="smoke", aws_secret_access_key="smoke",
                            region_name="us-east-1")
    sqs = session.client("sqs", endpoint_url=endpoint)
    table = "smoke-jobs"
    session.client("dynamodb", endpoint_url=endpoint).create_table(
        TableName=table, KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    results = "smoke-results"
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=results)
    queue = sqs.create_queue(QueueName="smoke")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="smoke-dlq")["QueueUrl"]
    # Every tier's jobs go to the one local queue (the API only sends; the worker run drains it).
    api_types = json.loads(ecs_container(templates["Compute"], "Api").environment["JOB_TYPES"])
    local = {"QUEUE_URL": queue, "DLQ_URL": dlq, "STATUS_TABLE": table, "RESULTS_BUCKET": results,
             "TIER_QUEUES": json.dumps({tier: queue for tier in set(api_types.values())}),
             "AWS_DEFAULT_REGION": "us-east-1"}
    prefix = f"jobfleet-smoke-{uuid.uuid4().hex[:8]}"
    try:
        _smoke_worker(templates["Compute"], image, local, aws, prefix, sqs, queue, dlq)
        _smoke_api(templates["Compute"], image, local, aws, prefix)
        if "Batch" in templates:
            _smoke_run_one(templates["Batch"], image, local, aws, prefix)
    finally:
        for name in _docker("ps", "-aq", "--filter", f"name={prefix}", check=False).split():
            _docker("rm", "-f", name, check=False)
        for volume in _docker("volume", "ls", "-q", "--filter", f"name={prefix}", check=False).split():
            _docker("volume", "rm", "-f", volume, check=False)
        server.stop()


def _envelope(job_type: str, payload: dict) -> dict:
    return {"jobId": str(uuid.uuid4()), "type": job_type, "payload": payload,
            "submittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _smoke_worker(template, image, local, aws, prefix, sqs, queue, dlq) -> None:
    spec = ecs_container(template, "Worker")
    container = _run(spec, image, {**local_environment(spec, local), **aws}, prefix)
    _wait("the worker's health command to pass", lambda: _docker(
        "inspect", "--format", "{{.State.Health.Status}}", container) == "healthy", 120)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(_envelope("report", {"rows": 1000})))

    def drained() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    _wait("the worker to finish a report job (writes to /tmp)", drained, 60)
    if sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"):
        raise SmokeError("worker: the report job went to the DLQ: " + _docker("logs", container)[-500:])
    _docker("stop", "--time", "30", container)
    if _exit_code(container) != 0:
        raise SmokeError(f"worker: exit code {_exit_code(container)} after SIGTERM, expected 0")
    print("image smoke: worker healthy, job done, clean stop")


def _smoke_api(template, image, local, aws, prefix) -> None:
    spec = ecs_container(template, "Api")
    env = {**local_environment(spec, local), **aws}
    container = _run(spec, image, env, prefix)
    base = f"http://{HOST}:{env.get('PORT', API_PORT)}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            if _exit_code(container) is not None:
                raise SmokeError("api: exited: " + _docker("logs", container)[-500:]) from None
            return False

    _wait("GET /healthz = 200", healthy, 60)
    body = json.dumps({"type": "onboarding", "payload": {"userId": "u-1"}}).encode()
    request = urllib.request.Request(f"{base}/jobs", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 202:
            raise SmokeError(f"api: POST /jobs answered {response.status}, expected 202")
    _docker("stop", "--time", "30", container)
    print("image smoke: api healthy, job accepted")


def _smoke_run_one(template, image, local, aws, prefix) -> None:
    spec = batch_container(template)
    envelope = _envelope("analysis", {"steps": 1, "stepSeconds": 0.1})
    command = batch_command(spec, job_parameters(json.dumps(envelope), 0))  # as the feed submits it
    container = _run(spec, image, {**local_environment(spec, local), **aws}, prefix, command)
    _wait("run-one to exit", lambda: _exit_code(container) is not None, 120)
    if _exit_code(container) != 0:
        raise SmokeError(f"run-one: exit code {_exit_code(container)}: "
                         + _docker("logs", container)[-500:])
    print("image smoke: run-one exit 0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobfleet_tools image-smoke")
    parser.add_argument("--image", required=True, help="the built worker image")
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"))
    parser.add_argument("--env", default="dev")
    args = parser.parse_args(argv)
    try:
        smoke(args.image, args.assembly, args.env)
    except (SmokeError, KeyError, FileNotFoundError) as exc:
        print(f"image smoke failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
