"""Run the worker image the way ECS and AWS Batch will run it (CI's image job; needs Docker).

    python -m jobfleet_tools image-smoke --image IMAGE [--assembly cdk.out] [--env dev]

Every setting that decides whether a container can start comes from the synthesized templates,
not from this file: the user, the read-only root filesystem, the mount points (each gets a fresh,
empty, root-owned Docker volume — like a Fargate bind mount, it is populated from the image only
where the image declares a matching VOLUME), the command, the health command and the environment.
Each deploy-time value in the environment (a CloudFormation expression) is resolved against the
templates themselves, down to the resource it names, and that resource is created on a moto server
on this machine under the template's name: queues, the status table, the results bucket, the ECS
cluster and the services the API wakes. The Cognito user pool that issues the API's tokens is
replaced by a local issuer (jobfleet_tools.issuer: a per-run RSA key, its JWKS on 127.0.0.1). An
expression or resource kind without a local equivalent fails the run naming the variable, so a new
deploy-time reference can never pass unnoticed. The containers reach both over the host network.

Three runs: a worker of the first tier (healthy by its own health command, processes one job that
writes to /tmp, exits 0 on SIGTERM), the API (`/healthz`; `POST /jobs` refused without a token,
202 with a token of the submit scope, the job readable with the read scope; the tier the job went to
woken in moto's ECS if the API wakes it), and `run-one` of the first batch tier (exit 0). Any
failure prints one line and exits 1.

The environment resolution and the API checks (`LocalAws`, `check_api`) do not need Docker: the
tests drive them against `python -m worker api` as a plain process.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobfleet_contract import environment as names
from jobfleet_contract.batch import job_parameters
from jobfleet_contract.environment import ConfigError, parse_wake_services
from jobfleet_tools.issuer import LocalIssuer

HOST = "127.0.0.1"
REGION = "us-east-1"
# The property that names a resource of each kind the smoke can create (absent: CloudFormation
# generates a name from the stack name and logical ID; so does the smoke).
NAME_PROPERTIES = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::Service": "ServiceName",
}


class SmokeError(RuntimeError):
    """One line: which container, what it did instead of what it should."""


class Unresolvable(Exception):
    """A CloudFormation expression without a local equivalent (the message shows which)."""


@dataclass(frozen=True)
class Stage:
    """One environment's synthesized stage."""

    templates: dict[str, dict]  # stack id (Network, Compute, ...) -> template
    stack_ids: dict[str, str]  # CloudFormation stack name -> stack id


@dataclass(frozen=True)
class ContainerSpec:
    """What the template says about one container (an ECS container or a Batch job container)."""

    name: str
    stack: str  # id of the stack that defines it (its expressions refer to that stack's resources)
    user: str
    read_only: bool
    mount_paths: tuple[str, ...]
    command: tuple[str, ...]
    health_command: tuple[str, ...]  # the CMD form without "CMD"; empty = no health check
    environment: dict[str, Any]  # values that are not strings are deploy-time references


def load_stage(assembly: Path, env: str) -> Stage:
    manifest = json.loads((assembly / "manifest.json").read_text())
    artifact = manifest["artifacts"][f"assembly-{env}"]
    stage_dir = assembly / artifact["properties"]["directoryName"]
    stage = json.loads((stage_dir / "manifest.json").read_text())
    templates, stack_ids = {}, {}
    for stack in stage["artifacts"].values():
        if stack["type"] == "aws:cloudformation:stack":
            stack_id = stack["displayName"].split("/")[-1]
            templates[stack_id] = json.loads((stage_dir / stack["properties"]["templateFile"]).read_text())
            stack_ids[stack["properties"]["stackName"]] = stack_id
    return Stage(templates, stack_ids)


def _resources(template: dict, resource_type: str) -> list[dict]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == resource_type]


def ecs_container(stage: Stage, stack: str, name: str) -> ContainerSpec:
    """The first container called `name` in the ECS task definitions of the stack."""
    for task in _resources(stage.templates[stack], "AWS::ECS::TaskDefinition"):
        for container in task["ContainerDefinitions"]:
            if container["Name"] == name:
                health = container.get("HealthCheck", {}).get("Command", [])
                if health and health[0] != "CMD":
                    raise SmokeError(f"{name}: health command {health} is not in CMD form")
                return ContainerSpec(
                    name=name, stack=stack, user=container.get("User", ""),
                    read_only=bool(container.get("ReadonlyRootFilesystem")),
                    mount_paths=tuple(m["ContainerPath"] for m in container.get("MountPoints", [])),
                    command=tuple(container.get("Command", [])),
                    health_command=tuple(health[1:]),
                    environment={e["Name"]: e["Value"] for e in container.get("Environment", [])})
    raise SmokeError(f"no ECS container named {name!r} in the {stack} template")


def batch_container(stage: Stage, stack: str, index: int = 0) -> ContainerSpec:
    """The container of the stack's `index`-th Batch job definition."""
    props = _resources(stage.templates[stack], "AWS::Batch::JobDefinition")[index]["ContainerProperties"]
    return ContainerSpec(
        name="run-one", stack=stack, user=props.get("User", ""),
        read_only=bool(props.get("ReadonlyRootFilesystem")),
        mount_paths=tuple(m["ContainerPath"] for m in props.get("MountPoints", [])),
        command=tuple(props["Command"]), health_command=(),
        environment={e["Name"]: e["Value"] for e in props.get("Environment", [])})


def _canonical(expression: Any) -> str:
    return json.dumps(expression, sort_keys=True)


class LocalAws:
    """The local stand-ins for what a stage's containers reference: resources on a moto server,
    each created the first time an expression refers to it, and the local token issuer's URL."""

    def __init__(self, stage: Stage, endpoint: str, issuer_url: str) -> None:
        import boto3

        self.stage, self.endpoint, self.issuer_url = stage, endpoint, issuer_url
        # An account of its own (moto keeps every server's state in one process-wide store): the
        # templates' names never collide with another run's, and AWS::AccountId is this account.
        self.account = f"{uuid.uuid4().int % 10**12:012d}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="smoke", aws_secret_access_key="smoke")
        iam.meta.events.register("before-sign.iam.*", self._in_account)
        iam.create_user(UserName="image-smoke")
        key = iam.create_access_key(UserName="image-smoke")["AccessKey"]
        self._keys = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                      "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        # Any: clients are made by service name (the stubs type each name's client separately).
        self._session: Any = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                                           aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)
        self._made: dict[tuple[str, str], tuple[str, str]] = {}  # (stack, logical id) -> (name, Ref value)
        # A name the templates build (e.g. "<env>-results-<account>-<region>") rather than reference:
        # a container given the same expression means that resource.
        self._built_names: dict[str, tuple[str, str]] = {}
        for stack, template in stage.templates.items():
            for logical_id, resource in template["Resources"].items():
                name = resource.get("Properties", {}).get(NAME_PROPERTIES.get(resource["Type"], ""))
                if isinstance(name, dict):
                    self._built_names[_canonical(name)] = (stack, logical_id)

    def _in_account(self, request: Any, **_kwargs: Any) -> None:
        request.headers["x-moto-account-id"] = self.account

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.endpoint)

    @property
    def credentials(self) -> dict[str, str]:
        """What a container gets in place of its task role: the moto endpoint and the run's keys."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **self._keys, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION}

    def environment(self, spec: ContainerSpec) -> dict[str, str]:
        """The container's environment with every deploy-time value resolved, plus `credentials`."""
        env = {}
        for name, value in spec.environment.items():
            try:
                env[name] = self.resolve(spec.stack, value)
            except Unresolvable as exc:
                raise SmokeError(f"{spec.name}: the deploy-time value of {name} has no local equivalent: "
                                 f"{exc} (teach jobfleet_tools/image_smoke.py)") from None
        return {**env, **self.credentials}

    def resolve(self, stack: str, expression: Any) -> str:
        """The local value of a CloudFormation expression in the stack's template."""
        built = self._built_names.get(_canonical(expression))
        return self._resource(*built)[0] if built is not None else self._evaluate(stack, expression)

    def _evaluate(self, stack: str, expression: Any) -> str:
        if isinstance(expression, str):
            return expression
        if isinstance(expression, dict) and len(expression) == 1:
            ((function, argument),) = expression.items()
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.resolve(stack, part) for part in parts)
            if function == "Ref" and argument in ("AWS::Region", "AWS::AccountId"):
                return REGION if argument == "AWS::Region" else self.account
            if function == "Ref":
                return self._resource(stack, argument)[1]
            if function == "Fn::GetAtt":
                logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
                return self._attribute(stack, logical_id, attribute)
            if function == "Fn::GetStackOutput" and argument.get("StackName") in self.stage.stack_ids:
                # One region here: the output's Region is the stage's own.
                producer = self.stage.stack_ids[argument["StackName"]]
                output = self.stage.templates[producer].get("Outputs", {}).get(argument["OutputName"])
                if output is not None:
                    return self.resolve(producer, output["Value"])
        raise Unresolvable(json.dumps(expression)[:200])

    def _kind(self, stack: str, logical_id: str) -> tuple[str, dict]:
        resource = self.stage.templates[stack]["Resources"].get(logical_id)
        if resource is None:
            raise Unresolvable(f"no resource {logical_id} in the {stack} template")
        return resource["Type"], resource.get("Properties", {})

    def _attribute(self, stack: str, logical_id: str, attribute: str) -> str:
        kind, _props = self._kind(stack, logical_id)
        if (kind, attribute) == ("AWS::Cognito::UserPool", "ProviderURL"):
            # The pool's tokens carry this URL as `iss`, its JWKS is under it: the local issuer's are too.
            return self.issuer_url
        if (kind, attribute) == ("AWS::ECS::Service", "Name"):
            return self._resource(stack, logical_id)[0]
        raise Unresolvable(f"Fn::GetAtt {logical_id}.{attribute} of a {kind}")

    def _resource(self, stack: str, logical_id: str) -> tuple[str, str]:
        """(name, Ref value) of the resource, created on the moto server on first use."""
        key = (stack, logical_id)
        if key not in self._made:
            kind, props = self._kind(stack, logical_id)
            if kind not in NAME_PROPERTIES:
                raise Unresolvable(f"Ref {logical_id}, a {kind}")
            name_property = NAME_PROPERTIES[kind]
            name = (self._evaluate(stack, props[name_property]) if name_property in props
                    else f"{_stack_name(self.stage, stack)}-{logical_id}".lower())
            self._made[key] = (name, self._create(stack, kind, name, props))
        return self._made[key]

    def _create(self, stack: str, kind: str, name: str, props: dict) -> str:
        """Create the resource; its Ref value (a queue's URL, a service's ARN, else its name)."""
        if kind == "AWS::SQS::Queue":
            visibility = props.get("VisibilityTimeout")
            attributes = {"VisibilityTimeout": str(visibility)} if isinstance(visibility, int) else {}
            return self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        if kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            indexes = [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                       for index in props.get("GlobalSecondaryIndexes", [])]
            self.client("dynamodb").create_table(
                TableName=name, KeySchema=props["KeySchema"], BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=props["AttributeDefinitions"],
                **({"GlobalSecondaryIndexes": indexes} if indexes else {}))
            return name
        if kind == "AWS::S3::Bucket":
            self.client("s3").create_bucket(Bucket=name)
            return name
        if kind == "AWS::ECS::Cluster":
            self.client("ecs").create_cluster(clusterName=name)
            return name
        # AWS::ECS::Service. Zero tasks, as after an idle spell: the state the API wakes a tier from.
        cluster = self.resolve(stack, props["Cluster"])
        return self.client("ecs").create_service(cluster=cluster, serviceName=name,
                                                 desiredCount=0)["service"]["serviceArn"]


def _stack_name(stage: Stage, stack: str) -> str:
    return next(name for name, stack_id in stage.stack_ids.items() if stack_id == stack)


@contextmanager
def local_aws(stage: Stage, issuer_url: str) -> Iterator[LocalAws]:
    """A moto server on 127.0.0.1 for one run (stopped on exit) and the stage's stand-ins on it."""
    from moto.server import ThreadedMotoServer

    from jobfleet_tools.local.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        yield LocalAws(stage, f"http://{HOST}:{port}", issuer_url)
    finally:
        server.stop()


def _wait(what: str, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise SmokeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _envelope(job_type: str, payload: dict) -> dict:
    return {"jobId": str(uuid.uuid4()), "type": job_type, "payload": payload,
            "submittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def check_worker(env: Mapping[str, str], aws: LocalAws, healthy: Callable[[], bool],
                 stop: Callable[[], int | None], logs: Callable[[], str]) -> str:
    """What a started worker must do; `env` is the environment it was given, `healthy` runs its
    health command, `stop` sends SIGTERM and returns the exit code. Returns what passed, as one line."""
    _wait("the worker's health command to pass", healthy, 120)
    sqs = aws.client("sqs")
    queue, dlq = env[names.QUEUE_URL], env[names.DLQ_URL]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(_envelope("report", {"rows": 1000})))

    def drained() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    _wait("the worker to finish a report job (writes to /tmp)", drained, 60)
    if sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"):
        raise SmokeError("worker: the report job went to the DLQ: " + logs()[-500:])
    code = stop()
    if code != 0:
        raise SmokeError(f"worker: exit code {code} after SIGTERM, expected 0: " + logs()[-500:])
    return "worker healthy, a report job done, exit 0 on SIGTERM"


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a request; error statuses are answers to check, not exceptions."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {"body": raw[:200].decode(errors="replace")}
    return status, answer if isinstance(answer, dict) else {"body": answer}


def check_api(base_url: str, env: Mapping[str, str], aws: LocalAws, issuer: LocalIssuer,
              exited: Callable[[], str | None]) -> str:
    """What a started API must do; `env` is the environment it was given, `exited` says why it is
    no longer running (None while it runs). Returns what passed, as one line."""
    from worker.auth import AuthSettings

    def up() -> bool:
        try:
            return _http("GET", f"{base_url}/healthz")[0] == 200
        except OSError:
            gone = exited()
            if gone is not None:
                raise SmokeError(f"api: {gone}") from None
            return False

    _wait("GET /healthz = 200", up, 60)
    passed = ["api healthy"]
    wake = parse_wake_services(env)
    job_types = json.loads(env[names.JOB_TYPES])
    # A type whose tier the API wakes, when there is one: the job then checks the wake too.
    job_type = next((t for t, tier in job_types.items() if tier in wake), next(iter(job_types)))
    job = {"type": job_type, "payload": {"smoke": True}}
    auth = AuthSettings.from_env(env)
    token = None
    if auth.enabled:
        status, answer = _http("POST", f"{base_url}/jobs", job)
        if status != 401:
            raise SmokeError(f"api: POST /jobs without a token answered {status}, expected 401: {answer}")
        token = issuer.token("image-smoke", [auth.scopes["submit"], auth.scopes["read"]])
        passed.append("401 without a token")
    status, accepted = _http("POST", f"{base_url}/jobs", job, token)
    if status != 202:
        raise SmokeError(f"api: POST /jobs answered {status}, expected 202: {accepted}")
    status, job_status = _http("GET", urllib.parse.urljoin(base_url, accepted["statusUrl"]), None, token)
    if status != 200 or job_status.get("jobId") != accepted["jobId"]:
        raise SmokeError(f"api: GET {accepted['statusUrl']} answered {status}: {job_status}")
    passed.append(f"a {job_type!r} job accepted (202) and read back ({job_status.get('status')})")
    tier = job_types[job_type]
    if tier in wake:
        cluster, service = wake[tier]
        ecs = aws.client("ecs")

        def woken() -> bool:
            found = ecs.describe_services(cluster=cluster, services=[service])["services"]
            return bool(found) and found[0]["desiredCount"] >= 1

        _wait(f"the API to wake the {tier} tier's service {service}", woken, 30)
        passed.append(f"the {tier} tier's service woken")
    return ", ".join(passed)


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


def _exit_code(container: str) -> int | None:
    state = json.loads(_docker("inspect", "--format", "{{json .State}}", container))
    return None if state["Running"] else state["ExitCode"]


def _run(spec: ContainerSpec, image: str, env: dict[str, str], prefix: str,
         command: list[str] | None = None) -> str:
    return _docker(*docker_run_args(spec, image, env, prefix, command)[1:])


def smoke(image: str, assembly: Path, env_name: str) -> None:
    stage = load_stage(assembly, env_name)
    prefix = f"jobfleet-smoke-{uuid.uuid4().hex[:8]}"
    with LocalIssuer() as issuer, local_aws(stage, issuer.url) as aws:
        try:
            _smoke_worker(stage, image, aws, prefix)
            _smoke_api(stage, image, aws, issuer, prefix)
            if "Batch" in stage.templates:
                _smoke_run_one(stage, image, aws, prefix)
        finally:
            for name in _docker("ps", "-aq", "--filter", f"name={prefix}", check=False).split():
                _docker("rm", "-f", name, check=False)
            for volume in _docker("volume", "ls", "-q", "--filter", f"name={prefix}", check=False).split():
                _docker("volume", "rm", "-f", volume, check=False)


def _smoke_worker(stage: Stage, image: str, aws: LocalAws, prefix: str) -> None:
    spec = ecs_container(stage, "Compute", "Worker")
    env = aws.environment(spec)
    container = _run(spec, image, env, prefix)

    def stop() -> int | None:
        _docker("stop", "--time", "30", container)
        return _exit_code(container)

    print("image smoke: " + check_worker(
        env, aws, lambda: _docker("inspect", "--format", "{{.State.Health.Status}}", container) == "healthy",
        stop, lambda: _docker("logs", container)))


def _smoke_api(stage: Stage, image: str, aws: LocalAws, issuer: LocalIssuer, prefix: str) -> None:
    spec = ecs_container(stage, "Compute", "Api")
    env = aws.environment(spec)
    container = _run(spec, image, env, prefix)

    def exited() -> str | None:
        code = _exit_code(container)
        return None if code is None else f"exited ({code}): " + _docker("logs", container)[-500:]

    print("image smoke: " + check_api(f"http://{HOST}:{env[names.PORT]}", env, aws, issuer, exited))
    _docker("stop", "--time", "30", container)


def _smoke_run_one(stage: Stage, image: str, aws: LocalAws, prefix: str) -> None:
    spec = batch_container(stage, "Batch")
    envelope = _envelope("analysis", {"steps": 1, "stepSeconds": 0.1})
    command = batch_command(spec, job_parameters(json.dumps(envelope), 0))  # as the feed submits it
    container = _run(spec, image, aws.environment(spec), prefix, command)
    _wait("run-one to exit", lambda: _exit_code(container) is not None, 120)
    if _exit_code(container) != 0:
        raise SmokeError(f"run-one: exit code {_exit_code(container)}: "
                         + _docker("logs", container)[-500:])
    print("image smoke: run-one exit 0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobfleet_tools image-smoke")
    parser.add_argument("--image", required=True, help="the built worker image")
    parser.add_argument("--assembly", type=Path, default=Path("cdk.out"))
    parser.add_argument("--env", default="dev")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        smoke(args.image, args.assembly, args.env)
    except (SmokeError, ConfigError, KeyError, FileNotFoundError) as exc:
        print(f"image smoke failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
