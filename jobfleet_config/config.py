"""Per-environment configuration: TOML files merged, validated and frozen into typed objects.

`defaults.toml` is merged with `<env>.toml` (tables key by key, `[[tiers]]` by `name`), then
every value is checked against the schema declared on the dataclasses below. The first problem
raises `ConfigError`, whose message is one line naming the file, the field, the value and what is
allowed. Values that AWS ties together (visibility timeout, backlog-per-task target) are derived
here, never hand-set.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from jobfleet_config.naming import Naming
from jobfleet_config.workload import (
    ARCHITECTURES,
    DEFAULT_BREAKER,
    DEFAULT_EPHEMERAL_GIB,
    EXAMPLE_HANDLERS,
    MAX_EPHEMERAL_GIB,
    ImageSpec,
    WorkloadError,
    check_environment,
    check_handlers,
    check_permissions,
    check_secrets,
    check_statements,
    image_warning,
    parse_image,
)

# The TOML files stay beside the CDK entry point; this package only reads them.
ENVIRONMENTS_DIR = Path(__file__).resolve().parent.parent / "cdk_app" / "environments"
DEFAULTS_FILE = "defaults.toml"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
# Fargate task sizes: cpu units -> allowed memory (MiB).
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
SQS_MAX_VISIBILITY_SECONDS = 43_200
# Time the worker needs beyond the handler's own deadline to delete or dead-letter the message.
VISIBILITY_MARGIN_SECONDS = 60
# Batch's SubmitJob request is at most 30 KiB; the envelope travels in it as one JSON string, so
# each byte of the (JSON-serialized) payload can cost two (an escaped quote or backslash) and
# 14 KiB leaves room for that, the envelope's other fields and the job queue/definition ARNs.
BATCH_MAX_PAYLOAD_BYTES = 14_336
# AWS Batch runs a job at most this many times (RetryStrategy.attempts).
BATCH_MAX_ATTEMPTS = 10
# Control Tower proactive controls that follow from a config value; an environment that sets such a
# value below the control has to waive the control in [guard] waivers, with its reason.
LOG_RETENTION_CONTROL = "CT.CLOUDWATCH.PR.2"  # log groups kept at least a year
LOG_ENCRYPTION_CONTROL = "CT.CLOUDWATCH.PR.3"  # log groups encrypted with a customer-managed key
HTTPS_REDIRECT_CONTROL = "CT.ELASTICLOADBALANCING.PR.1"  # HTTP listeners only redirect to HTTPS
DELETION_PROTECTION_CONTROL = "CT.ELASTICLOADBALANCING.PR.5"  # ALB deletion protection
WAIVABLE_CONTROLS = (LOG_RETENTION_CONTROL, LOG_ENCRYPTION_CONTROL, HTTPS_REDIRECT_CONTROL,
                     DELETION_PROTECTION_CONTROL)
GUARD_MIN_RETENTION_DAYS = 365
MIN_WAIVER_REASON_CHARS = 40
# Graviton EC2 classes (m7g, c6gn, r8gd, x2gd, ...): the batch tier's architecture decides which fit.
_ARM_INSTANCE_CLASS = r"^[a-z]+\d+g"


class ConfigError(ValueError):
    """A configuration problem, as one line: `<file>: <field> = <value>: <what is allowed>`."""

    def __init__(self, file: str, field: str, value: Any, allowed: str) -> None:
        self.file, self.field, self.value, self.allowed = file, field, value, allowed
        shown = "(missing)" if value is _MISSING else repr(value)
        super().__init__(f"{file}: {field} = {shown}: {allowed}")


_MISSING = object()
# Names the file a config field came from (the environment file or defaults.toml).
Where = Callable[[str], str]


def _spec(kind: str, *, default: Any = _MISSING, minimum: float | None = None,
          maximum: float | None = None, choices: tuple[object, ...] | None = None, pattern: str | None = None,
          check: Any = None, doc: str = "") -> Any:
    """A dataclass field carrying its validation rule (kind: str, int, float, bool, list[str]; or
    any kind with ``check``, a function of the raw value raising WorkloadError)."""
    rule = {"kind": kind, "min": minimum, "max": maximum, "choices": choices, "pattern": pattern,
            "check": check, "doc": doc}
    if default is _MISSING:
        return dataclasses.field(metadata=rule)
    if isinstance(default, list):
        default = tuple(default)
    if isinstance(default, dict):
        frozen = MappingProxyType(default)
        return dataclasses.field(default_factory=lambda: frozen, metadata=rule)
    return dataclasses.field(default=default, metadata=rule)


def _check_image(value: Any) -> str:
    if not isinstance(value, str):
        raise WorkloadError(value, "a string: a build directory or an image reference")
    parse_image(value)
    return value


_TIER_NAME = r"^[a-z][a-z0-9-]{0,29}$"
_ACCOUNT = r"^\d{12}$"
_REGION = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"


@dataclasses.dataclass(frozen=True)
class AppConfig:
    name: str = _spec("str", default="jobfleet", pattern=r"^[a-z][a-z0-9-]{1,19}$",
                      doc="Prefix of every resource name (queues, alarms, functions).")
    account: str = _spec("str", default="", pattern=_ACCOUNT + "|^$",
                         doc="AWS account ID; empty = env-agnostic synth.")
    region: str = _spec("str", default="", pattern=_REGION + "|^$",
                        doc="AWS region; empty = env-agnostic synth.")
    removal_policy: str = _spec("str", default="retain", choices=("retain", "destroy"),
                                doc="What stack deletion does to queues, tables and buckets.")
    log_retention_days: int = _spec("int", default=365, choices=LOG_RETENTION_DAYS,
                                    doc="Retention of every log group the app creates "
                                        "(below 365: waive CT.CLOUDWATCH.PR.2).")
    log_encryption: str = _spec("str", default="kms", choices=("kms", "cloudwatch"),
                                doc="Log groups encrypted with a customer-managed key per stack, or "
                                    "CloudWatch's own keys (waive CT.CLOUDWATCH.PR.3).")

    @property
    def retain(self) -> bool:
        """Whether queues, tables, buckets and log groups outlive their stack."""
        return self.removal_policy == "retain"


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    cidr: str = _spec("str", default="10.40.0.0/16", doc="VPC CIDR block (/16 to /24).")
    max_azs: int = _spec("int", default=2, minimum=2, maximum=3, doc="Availability zones used.")
    nat_gateways: int = _spec("int", default=2, minimum=1, maximum=3,
                              doc="NAT gateways (1 = cheap, one per AZ = no cross-AZ dependency).")
    flow_log_retention_days: int = _spec("int", default=365, choices=LOG_RETENTION_DAYS,
                                         doc="Retention of the VPC flow log group "
                                             "(below 365: waive CT.CLOUDWATCH.PR.2).")
    vpc_id: str = _spec("str", default="", pattern=r"^vpc-[0-9a-f]{8,17}$|^$",
                        doc="Import this existing VPC instead of creating one (needs account and region).")
    vpc_endpoints: bool = _spec("bool", default=False,
                                doc="Private endpoints for SQS, ECR, CloudWatch Logs (interface) and S3, "
                                    "DynamoDB (gateway): AWS API traffic bypasses the NAT gateways.")


@dataclasses.dataclass(frozen=True)
class QueuesConfig:
    encryption: str = _spec("str", default="sqs-managed", choices=("sqs-managed", "kms"),
                            doc="SSE-SQS, or a customer-managed KMS key with rotation.")


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    image: str = _spec("str", default="", check=_check_image,
                       doc="API image: build directory or `<registry>/<repo>:tag`/`@sha256:` reference; "
                           "empty = the reference job API in the worker image.")
    architecture: str = _spec("str", default="x86_64", choices=ARCHITECTURES,
                              doc="CPU architecture of the API tasks (arm64 = Graviton).")
    cpu: int = _spec("int", default=256, choices=tuple(FARGATE_MEMORY), doc="API task CPU units.")
    memory_mib: int = _spec("int", default=512, minimum=512, maximum=122880, doc="API task memory.")
    min_tasks: int = _spec("int", default=2, minimum=1, maximum=100, doc="API tasks at least.")
    max_tasks: int = _spec("int", default=6, minimum=1, maximum=100, doc="API tasks at most.")
    cpu_target_percent: int = _spec("int", default=60, minimum=10, maximum=90,
                                    doc="Target CPU utilization of the API service.")
    requests_per_target: int = _spec("int", default=500, minimum=0, maximum=100000,
                                     doc="Target ALB requests per task per minute; 0 = off.")
    certificate_arn: str = _spec("str", default="",
                                 pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$|^$",
                                 doc="ACM certificate for HTTPS; empty = deploy-time parameter.")
    allow_plain_http: bool = _spec("bool", default=False,
                                   doc="Serve plain HTTP without a certificate (dev only; waive "
                                       "CT.ELASTICLOADBALANCING.PR.1).")
    idle_timeout_seconds: int = _spec("int", default=60, minimum=1, maximum=4000,
                                      doc="ALB idle timeout.")
    health_check_path: str = _spec("str", default="/healthz", pattern=r"^/[A-Za-z0-9/_.-]*$",
                                   doc="Target group health-check path.")
    deletion_protection: bool = _spec("bool", default=True,
                                      doc="ALB deletion protection (false: waive "
                                          "CT.ELASTICLOADBALANCING.PR.5).")
    access_log_expiry_days: int = _spec("int", default=90, minimum=1, maximum=3650,
                                        doc="Days ALB access logs are kept.")
    max_payload_bytes: int = _spec("int", default=65536, minimum=1024, maximum=200_000,
                                   doc="Largest job payload the API accepts (SQS and Batch limits).")
    internal: bool = _spec("bool", default=False,
                           doc="Internal (VPC-only) ALB in private subnets for producers in the VPC.")
    waf: bool = _spec("bool", default=True,
                      doc="AWS managed WAF rule groups and a per-IP rate rule on the public ALB.")
    waf_requests_per_ip: int = _spec("int", default=2000, minimum=100, maximum=2_000_000_000,
                                     doc="WAF rate rule: requests per IP per 5 minutes, then blocked.")
    wake_from_zero: bool = _spec("bool", default=True,
                                 doc="A job for a tier at zero tasks makes the API start its first task.")
    wake_interval_seconds: int = _spec("int", default=10, minimum=1, maximum=300,
                                       doc="Seconds between two wake-up checks of one tier per API task.")


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    mode: str = _spec("str", default="jwt", choices=("jwt", "none"),
                      doc="jwt = bearer tokens on /jobs; none = open (refused in prod unless api.internal).")
    issuer: str = _spec("str", default="", pattern=r"^https://[A-Za-z0-9.:/_-]+$|^$",
                        doc="Token issuer (iss) URL; empty = provision a Cognito user pool as the issuer.")
    audience: str = _spec("str", default="", pattern=r"^[A-Za-z0-9][A-Za-z0-9.:/_-]{0,255}$|^$",
                          doc="aud / resource-server identifier; empty = <app>-<env>-api (provisioned pool).")
    rate_limit_per_client: float = _spec("float", default=50, minimum=0, maximum=100_000,
                                         doc="Requests per second per client per API task; 0 = off.")

    @property
    def provisions_issuer(self) -> bool:
        return self.mode == "jwt" and not self.issuer


@dataclasses.dataclass(frozen=True)
class TierConfig:
    name: str = _spec("str", pattern=_TIER_NAME, doc="Tier name; part of queue names (frozen).")
    runtime: str = _spec("str", choices=("service", "batch"),
                         doc="`service` = Fargate workers, `batch` = AWS Batch jobs.")
    latency_objective_seconds: int = _spec("int", minimum=1, maximum=86400,
                                           doc="Seconds a message may wait before it starts.")
    expected_job_seconds: float = _spec("float", minimum=0.001, maximum=43200,
                                        doc="Typical job duration.")
    max_job_seconds: int = _spec("int", minimum=1, maximum=SQS_MAX_VISIBILITY_SECONDS,
                                 doc="Hard limit of one job; sets the visibility timeout.")
    max_receive_count: int = _spec("int", default=5, minimum=1, maximum=1000,
                                   doc="Attempts before a message goes to the DLQ; on a batch tier also "
                                       "a job's attempts against transient failures (at most 10).")
    queue_retention_days: int = _spec("int", default=4, minimum=1, maximum=14,
                                      doc="Message retention of the tier queue.")
    dlq_retention_days: int = _spec("int", default=14, minimum=2, maximum=14,
                                    doc="Message retention of the DLQ (> queue retention).")
    cpu: int = _spec("int", default=512, minimum=256, maximum=16384,
                     doc="Task CPU units (Fargate) or 1024 x vCPUs (Batch).")
    memory_mib: int = _spec("int", default=1024, minimum=512, maximum=122880, doc="Task memory.")
    concurrency: int = _spec("int", default=1, minimum=1, maximum=256, doc="Jobs at once per task.")
    min_tasks: int = _spec("int", default=0, minimum=0, maximum=1000, doc="Worker tasks at least.")
    max_tasks: int = _spec("int", default=0, minimum=0, maximum=1000, doc="Worker tasks at most.")
    stop_timeout_seconds: int = _spec("int", default=120, minimum=2, maximum=120,
                                      doc="ECS stopTimeout: drain budget after SIGTERM.")
    fargate_spot_weight: int = _spec("int", default=0, minimum=0, maximum=10,
                                     doc="Weight of FARGATE_SPOT against FARGATE (weight 1).")
    handlers: tuple[str, ...] = _spec("list[str]", default=[], check=check_handlers,
                                      doc="Handler modules the tier's workers import; empty = JobFleet's "
                                          "examples (synth warns).")
    image: str = _spec("str", default="", check=_check_image,
                       doc="Build directory (relative to the repo root) or prebuilt image reference "
                           "(`@sha256:` digest recommended); empty = the worker image with `jobs/`.")
    architecture: str = _spec("str", default="x86_64", choices=ARCHITECTURES,
                              doc="CPU architecture (arm64 = Graviton Fargate / Graviton Batch instances).")
    ephemeral_storage_gib: int = _spec("int", default=DEFAULT_EPHEMERAL_GIB, minimum=DEFAULT_EPHEMERAL_GIB,
                                       maximum=MAX_EPHEMERAL_GIB,
                                       doc="Task storage (Fargate 21-200 GiB; 20 = Fargate's default).")
    environment: Mapping[str, str] = _spec("table", default={}, check=check_environment,
                                           doc="Plain variables `{ NAME = \"value\" }`; JobFleet's own names "
                                               "are refused.")
    secrets: Mapping[str, Any] = _spec("table", default={}, check=check_secrets,
                                       doc="Container secrets `{ NAME = \"secretsmanager:<name-or-arn>"
                                           "[:json-key]\" | \"ssm:<parameter>\" }`.")
    secrets_kms_key_arn: str = _spec("str", default="",
                                     pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$|^$",
                                     doc="Customer-managed KMS key of those secrets (decrypt granted).")
    permissions: Mapping[str, tuple[str, ...]] = _spec(
        "table", default={}, check=check_permissions,
        doc="`{ \"s3:read\" = [\"bucket/prefix/\"], ... }`; verbs: s3:read, s3:write, dynamodb:read, "
            "dynamodb:write, sns:publish, sqs:send, lambda:invoke.")
    iam_statements: tuple[Any, ...] = _spec(
        "list[table]", default=[], check=check_statements,
        doc="Explicit `{ actions = [...], resources = [...] }`; no wildcard actions, no `\"*\"` "
            "resource for actions with resource-level permissions.")

    @property
    def is_service(self) -> bool:
        return self.runtime == "service"

    @property
    def image_spec(self) -> ImageSpec:
        return parse_image(self.image)

    @property
    def handler_modules(self) -> tuple[str, ...]:
        """What WORKER_HANDLERS names: the configured modules, else JobFleet's examples."""
        return self.handlers or EXAMPLE_HANDLERS

    @property
    def visibility_timeout_seconds(self) -> int:
        """Longest job plus time to settle it, so a healthy job never reappears mid-run."""
        return self.max_job_seconds + VISIBILITY_MARGIN_SECONDS

    @property
    def backlog_per_task_target(self) -> float:
        """Messages one task may have waiting and still meet the latency objective.

        A task finishes `concurrency / expected_job_seconds` jobs a second, so in
        `latency_objective_seconds` it clears latency / expected x concurrency messages.
        """
        return round(self.latency_objective_seconds / self.expected_job_seconds * self.concurrency, 3)


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    compute: str = _spec("str", default="ec2-spot", choices=("ec2-spot", "fargate-spot"),
                         doc="Compute behind the batch tier.")
    instance_classes: tuple[str, ...] = _spec("list[str]", default=["m6i", "m7i", "c6i", "r6i"],
                                              pattern=r"^[a-z][a-z0-9-]*[0-9][a-z0-9-]*(\.[a-z0-9]+)?$",
                                              doc="EC2 instance classes or types for Spot.")
    max_vcpus: int = _spec("int", default=256, minimum=1, maximum=100000, doc="Spot vCPUs at most.")
    on_demand_fallback: bool = _spec("bool", default=True,
                                     doc="On-demand compute environment at order 2.")
    on_demand_max_vcpus: int = _spec("int", default=64, minimum=1, maximum=100000,
                                     doc="On-demand vCPUs at most.")
    spot_retry_attempts: int = _spec("int", default=5, minimum=1, maximum=10,
                                     doc="Attempts of a job whose Spot host was reclaimed (Batch counts "
                                         "them with transient retries: max of this and max_receive_count).")
    runnable_timeout_seconds: int = _spec("int", default=3600, minimum=600, maximum=86400,
                                          doc="A job stuck RUNNABLE this long is cancelled.")
    max_payload_bytes: int = _spec("int", default=BATCH_MAX_PAYLOAD_BYTES, minimum=1024,
                                   maximum=BATCH_MAX_PAYLOAD_BYTES,
                                   doc="Largest payload of a batch-tier job (Batch SubmitJob takes 30 KiB).")


@dataclasses.dataclass(frozen=True)
class AlarmsConfig:
    emails: tuple[str, ...] = _spec("list[str]", default=[], pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                                    doc="Email addresses subscribed to the alarm topic.")
    https_endpoints: tuple[str, ...] = _spec("list[str]", default=[], pattern=r"^https://\S+$",
                                             doc="HTTPS endpoints subscribed to the alarm topic.")
    dlq_messages_threshold: int = _spec("int", default=1, minimum=1, maximum=100000,
                                        doc="DLQ depth that alarms.")
    memory_utilization_percent: int = _spec("int", default=80, minimum=10, maximum=100,
                                            doc="Worker memory utilization that alarms.")
    alb_5xx_threshold: int = _spec("int", default=10, minimum=1, maximum=100000,
                                   doc="ALB-generated 5xx per 5 minutes that alarm.")
    target_5xx_rate_percent: float = _spec("float", default=5, minimum=0.1, maximum=100,
                                           doc="Target 5xx share of requests that alarms.")
    p95_response_seconds: float = _spec("float", default=2.0, minimum=0.01, maximum=600,
                                        doc="p95 target response time that alarms.")
    batch_failed_jobs_threshold: int = _spec("int", default=1, minimum=1, maximum=100000,
                                             doc="Failed Batch jobs per hour that alarm.")
    deployment_failed_jobs_percent: int = _spec(
        "int", default=50, minimum=1, maximum=100,
        doc="Share of a tier's finished jobs failing (3 minutes in a row) that rolls a worker "
            "deployment back.")


@dataclasses.dataclass(frozen=True)
class RedriveConfig:
    max_redrives: int = _spec("int", default=3, minimum=1, maximum=100,
                              doc="Redrives after which a message stays quarantined in its DLQ.")
    timeout_seconds: int = _spec("int", default=300, minimum=30, maximum=900,
                                 doc="Redrive Lambda timeout.")
    reserved_concurrency: int = _spec(
        "int", default=1, minimum=0, maximum=1,
        doc="1 = one redrive at a time (reserved concurrency; the deploy fails where the account's "
            "Lambda concurrency quota is 10); 0 = no reservation, operators serialize redrives.")
    scheduled_tiers: tuple[str, ...] = _spec("list[str]", default=[], pattern=_TIER_NAME,
                                             doc="Tiers redriven automatically every hour.")
    scheduled_error_types: tuple[str, ...] = _spec("list[str]", default=[],
                                                   pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
                                                   doc="Error types the scheduled redrive moves.")


@dataclasses.dataclass(frozen=True)
class JobTypeConfig:
    tier: str = _spec("str", pattern=_TIER_NAME, doc="Tier (queue) that runs the job type.")
    timeout_seconds: int = _spec("int", default=0, minimum=0, maximum=SQS_MAX_VISIBILITY_SECONDS,
                                 doc="Handler deadline; 0 = the tier's max_job_seconds (never above it).")
    isolation: str = _spec("str", default="thread", choices=("thread", "process"),
                           doc="`process`: the handler runs in a recycled child process (killable).")
    breaker_failures: int = _spec("int", default=DEFAULT_BREAKER[0], minimum=1, maximum=1000,
                                  doc="Consecutive transient failures that open the type's breaker.")
    breaker_cooldown_seconds: int = _spec("int", default=DEFAULT_BREAKER[1], minimum=1, maximum=900,
                                          doc="Seconds an open breaker defers the type's jobs.")


@dataclasses.dataclass(frozen=True)
class ResultsConfig:
    enabled: bool = _spec("bool", default=True,
                          doc="Results bucket: handlers' results stored as results/<jobId>.json.")
    expiry_days: int = _spec("int", default=30, minimum=1, maximum=3650,
                             doc="Days a result is kept (bucket lifecycle rule).")
    inline_max_bytes: int = _spec("int", default=32768, minimum=0, maximum=262144,
                                  doc="GET /jobs/{id} returns results up to this size inline.")
    url_seconds: int = _spec("int", default=300, minimum=1, maximum=3600,
                             doc="Lifetime of the presigned URL of a larger result.")


@dataclasses.dataclass(frozen=True)
class EventsConfig:
    enabled: bool = _spec("bool", default=True,
                          doc="Publish a \"Job State Change\" event on every terminal state.")
    bus_name: str = _spec("str", default="default", pattern=r"^[A-Za-z0-9._-]{1,256}$",
                          doc="EventBridge bus the events go to (put-events granted on it only).")


@dataclasses.dataclass(frozen=True)
class StatusConfig:
    ttl_days: int = _spec("int", default=30, minimum=1, maximum=3650,
                          doc="Days a job's status record is kept.")


@dataclasses.dataclass(frozen=True)
class GuardConfig:
    waivers: Mapping[str, str] = _spec(
        "table[str]", default={}, choices=WAIVABLE_CONTROLS, minimum=MIN_WAIVER_REASON_CHARS,
        doc="Control Tower controls this environment's settings fail on purpose: control id -> "
            "reason (tests/stacks/test_guard.py runs the controls).")


@dataclasses.dataclass(frozen=True)
class CapacityConfig:
    """Assumptions of the capacity simulator and cost estimate (jobfleet_tools.capacity); not deployed."""

    task_start_seconds: float = _spec("float", default=60, minimum=1, maximum=900,
                                      doc="Fargate task start: placement, image pull, container start.")
    metric_lag_seconds: int = _spec("int", default=60, minimum=0, maximum=600,
                                    doc="Delay before a minute's CloudWatch data point reaches the alarms.")
    idle_queue_metric_delay_seconds: int = _spec("int", default=300, minimum=0, maximum=1800,
                                                 doc="Extra metric delay after a queue idle for 6 hours.")
    job_duration_cv: float = _spec("float", default=0.5, minimum=0, maximum=4,
                                   doc="Spread of job durations (coefficient of variation, lognormal).")
    spot_interruptions_per_hour: float = _spec("float", default=0.05, minimum=0, maximum=10,
                                               doc="Spot reclaims per running batch job and hour.")
    batch_start_seconds: float = _spec("float", default=180, minimum=0, maximum=3600,
                                       doc="Batch job start on a new Spot instance (launch, pull, start).")
    aws_api_gb_per_month: float = _spec("float", default=50, minimum=0, maximum=1_000_000,
                                        doc="Traffic to AWS APIs (ECR pulls, logs, SQS, S3) per month.")
    log_gb_per_month: float = _spec("float", default=5, minimum=0, maximum=1_000_000,
                                    doc="CloudWatch Logs ingested per month (all log groups).")


@dataclasses.dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    app: AppConfig
    network: NetworkConfig
    queues: QueuesConfig
    api: ApiConfig
    auth: AuthConfig
    tiers: tuple[TierConfig, ...]
    job_types: Mapping[str, str]
    batch: BatchConfig
    alarms: AlarmsConfig
    redrive: RedriveConfig
    status: StatusConfig
    guard: GuardConfig
    capacity: CapacityConfig
    results: ResultsConfig = ResultsConfig()
    events: EventsConfig = EventsConfig()
    # Per job type: tier, deadline, isolation, breaker (the string form `type = "tier"` = defaults).
    job_type_settings: Mapping[str, JobTypeConfig] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}))
    # `warning: ...` lines synth prints (examples still running, mutable image tags).
    warnings: tuple[str, ...] = ()
    # The worker image as a prebuilt reference (`-c image=...`, set by CI); "" = built from worker_image/.
    worker_image: str = ""

    @property
    def service_tiers(self) -> tuple[TierConfig, ...]:
        return tuple(t for t in self.tiers if t.is_service)

    @property
    def batch_tiers(self) -> tuple[TierConfig, ...]:
        return tuple(t for t in self.tiers if not t.is_service)

    def tier_job_types(self, tier: TierConfig) -> tuple[str, ...]:
        """The job types routed to ``tier``, sorted."""
        return tuple(sorted(t for t, name in self.job_types.items() if name == tier.name))

    def tier_job_settings(self, tier: TierConfig) -> dict[str, dict[str, Any]]:
        """The non-default per-job-type settings of ``tier``'s types, as the keyword arguments of
        jobfleet_contract.environment.job_type_environment (JOB_TIMEOUTS / JOB_ISOLATION / JOB_BREAKERS)."""
        jobs = {name: job for name, job in self.job_type_settings.items() if job.tier == tier.name}
        breakers = {name: (job.breaker_failures, job.breaker_cooldown_seconds) for name, job in jobs.items()}
        return {
            "timeouts": {name: job.timeout_seconds for name, job in jobs.items() if job.timeout_seconds},
            "isolation": {name: job.isolation for name, job in jobs.items() if job.isolation != "thread"},
            "breakers": {name: breaker for name, breaker in breakers.items() if breaker != DEFAULT_BREAKER},
        }

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def batch_attempts(self, tier: TierConfig) -> int:
        """The job definition's retry attempts: one count Batch keeps for every cause. Transient
        failures stop at the tier's max_receive_count (run-one asks for no retry on that attempt);
        Spot reclaims are retried while attempts remain, at least batch.spot_retry_attempts."""
        return max(tier.max_receive_count, self.batch.spot_retry_attempts)

    def tier_payload_limits(self) -> dict[str, int]:
        """Per-tier payload limits tighter than api.max_payload_bytes (batch tiers: SubmitJob size)."""
        return {t.name: min(self.api.max_payload_bytes, self.batch.max_payload_bytes)
                for t in self.batch_tiers}

    @property
    def api_is_open(self) -> bool:
        """Anyone who reaches the internet-facing ALB may submit and read jobs."""
        return self.auth.mode == "none" and not self.api.internal

    @property
    def auth_audience(self) -> str:
        return self.auth.audience or self.resource_name("api")

    @property
    def naming(self) -> Naming:
        return Naming(app=self.app.name, environment=self.name)

    def resource_name(self, *parts: str) -> str:
        """`<app>-<env>-<parts...>`: the naming convention of queues, alarms and functions."""
        return self.naming.resource_name(*parts)


# Top-level sections and the dataclass each one validates into.
_SECTIONS: dict[str, type] = {
    "app": AppConfig, "network": NetworkConfig, "queues": QueuesConfig, "api": ApiConfig,
    "auth": AuthConfig,
    "batch": BatchConfig, "alarms": AlarmsConfig, "redrive": RedriveConfig, "status": StatusConfig,
    "guard": GuardConfig,
    "capacity": CapacityConfig,
    "results": ResultsConfig, "events": EventsConfig,
}
_TOP_LEVEL = (*_SECTIONS, "tiers", "job_types")
_JOB_TYPE = r"^[a-z][a-z0-9_.-]{0,63}$"


def known_environments(directory: Path = ENVIRONMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml") if p.name != DEFAULTS_FILE)


def load_environment(name: str, directory: Path = ENVIRONMENTS_DIR) -> EnvironmentConfig:
    """Merge defaults.toml with <name>.toml and validate the result."""
    known = known_environments(directory)
    if name not in known:
        raise ConfigError("-c env", "env", name, f"one of {', '.join(known)}")
    defaults_file = directory / DEFAULTS_FILE
    env_file = directory / f"{name}.toml"
    origins: dict[str, str] = {}
    merged: dict[str, Any] = {}
    for path in (defaults_file, env_file):
        _merge_file(merged, _read_toml(path), _display(path), origins)
    return _validate(name, merged, origins, _display(env_file))


def load_all(directory: Path = ENVIRONMENTS_DIR) -> list[EnvironmentConfig]:
    return [load_environment(name, directory) for name in known_environments(directory)]


def with_prebuilt_image(config: EnvironmentConfig, reference: str) -> EnvironmentConfig:
    """Every tier (and the API) that runs the default worker image runs ``reference`` instead: the image
    CI built and pushed (`cdk synth -c image=<registry>/<repo>@sha256:<digest>`). Explicit images stay."""
    spec = _run_check(parse_image, reference, "image", "-c image")
    if not spec.prebuilt:
        raise ConfigError("-c image", "image", reference,
                          "a prebuilt image reference <registry>/<repository>@sha256:<digest>")
    updated = dataclasses.replace(config, worker_image=reference)
    warning = image_warning(spec)
    if warning:
        updated = dataclasses.replace(updated, warnings=(
            *config.warnings, f"warning: -c image: image = {reference!r}: {warning}"))
    return updated


def describe_fields() -> dict[str, list[tuple[str, str, Any, str]]]:
    """(field, kind, default, doc) per section, for the README's configuration reference."""
    sections = {**_SECTIONS, "tiers": TierConfig, "job_types.<name>": JobTypeConfig}
    result = {}
    for section, cls in sections.items():
        rows = []
        for f in dataclasses.fields(cls):
            default = _default(f)
            rows.append((f.name, f.metadata["kind"], default, f.metadata["doc"]))
        result[section] = rows
    return result


def _default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value, None for a required field."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(_display(path), "(file)", str(path), "the file must exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_display(path), "(syntax)", str(exc), "valid TOML") from exc


def _merge_file(merged: dict[str, Any], data: dict[str, Any], file: str,
                origins: dict[str, str]) -> None:
    for key, value in data.items():
        if key not in _TOP_LEVEL:
            raise ConfigError(file, key, value, f"unknown section; known: {', '.join(_TOP_LEVEL)}")
        if key == "tiers":
            merged["tiers"] = _merge_tiers(merged.get("tiers", []), value, file, origins)
        elif isinstance(value, dict):
            section = merged.setdefault(key, {})
            for field, field_value in value.items():
                section[field] = field_value
                origins[f"{key}.{field}"] = file
        else:
            raise ConfigError(file, key, value, "a table ([" + key + "])")


def _merge_tiers(base: list[dict[str, Any]], overrides: Any, file: str,
                 origins: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(overrides, list) or not all(isinstance(t, dict) for t in overrides):
        raise ConfigError(file, "tiers", overrides, "an array of tables ([[tiers]])")
    result = [dict(t) for t in base]
    seen: set[str] = set()
    for index, tier in enumerate(overrides):
        name = tier.get("name", _MISSING)
        if not isinstance(name, str):
            raise ConfigError(file, f"tiers[{index}].name", name, "a tier name (string) in every [[tiers]]")
        if name in seen:
            raise ConfigError(file, f"tiers[{name}].name", name, "each tier name at most once per file")
        seen.add(name)
        existing = next((t for t in result if t["name"] == name), None)
        if existing is None:
            existing = {}
            result.append(existing)
        existing.update(tier)
        for field in tier:
            origins[f"tiers[{name}].{field}"] = file
    return result


def _validate(env: str, merged: dict[str, Any], origins: dict[str, str],
              env_file: str) -> EnvironmentConfig:
    def where(field: str) -> str:
        return origins.get(field, env_file)

    sections = {key: _build(cls, merged.get(key, {}), key, where)
                for key, cls in _SECTIONS.items()}
    tiers_raw = merged.get("tiers", [])
    if not tiers_raw:
        raise ConfigError(env_file, "tiers", [], "at least one [[tiers]] table")
    tiers = tuple(_build(TierConfig, raw, f"tiers[{raw['name']}]", where) for raw in tiers_raw)
    job_type_settings = _validate_job_types(merged.get("job_types", {}), tiers, where)
    job_types = {name: settings.tier for name, settings in job_type_settings.items()}
    config = EnvironmentConfig(name=env, tiers=tiers, job_types=job_types,
                               job_type_settings=MappingProxyType(job_type_settings), **sections)
    _check_consistency(config, where)
    return dataclasses.replace(config, warnings=_warnings(config, where))


def _build(cls: type, raw: Any, prefix: str, where: Where) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(where(prefix), prefix, raw, "a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(where(f"{prefix}.{key}"), f"{prefix}.{key}", raw[key],
                              f"unknown key; known: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        path = f"{prefix}.{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(where(prefix + ".name"), path, _MISSING, "required; "
                                  + _describe_rule(f.metadata))
            continue
        values[name] = _check_value(raw[name], f.metadata, path, where(path))
    return cls(**values)


def _check_value(value: Any, rule: Mapping[str, Any], path: str, file: str) -> Any:
    kind = rule["kind"]

    def fail(allowed: str | None = None) -> None:
        raise ConfigError(file, path, value, allowed or _describe_rule(rule))

    if kind == "table[str]":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            fail("a table of strings")
        for key, text in value.items():
            if rule["choices"] is not None and key not in rule["choices"]:
                raise ConfigError(file, f"{path}.{key}", text,
                                  f"a key from {', '.join(rule['choices'])}")
            if len(text.strip()) < rule["min"]:
                raise ConfigError(file, f"{path}.{key}", text,
                                  f"a specific reason of at least {rule['min']} characters")
        return dict(value)
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail("a list of strings")
        for item in value:
            if rule["pattern"] and not re.search(rule["pattern"], item):
                raise ConfigError(file, path, item, f"each item matching {rule['pattern']}")
    elif kind in ("str", "int", "float", "bool"):
        ok_type = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
        }[kind]
        if not ok_type:
            fail()
        if rule["choices"] is not None and value not in rule["choices"]:
            fail()
        if rule["min"] is not None and value < rule["min"]:
            fail()
        if rule["max"] is not None and value > rule["max"]:
            fail()
        if rule["pattern"] is not None and not re.search(rule["pattern"], value):
            fail()
    # Any other kind ("table", "list[table]") is its check's alone.
    if rule["check"] is not None:
        value = _run_check(rule["check"], value, path, file)
    elif kind == "list[str]":
        value = tuple(value)
    return float(value) if kind == "float" else value


_T = TypeVar("_T")


def _run_check(check: Callable[[Any], _T], value: Any, path: str, file: str) -> _T:
    """``check(value)`` (a workload parser); its WorkloadError becomes a ConfigError naming the file and
    field, with the value and what is allowed as the parser said them."""
    try:
        return check(value)
    except WorkloadError as exc:
        raise ConfigError(file, path, exc.value, exc.allowed) from None


def _describe_rule(rule: Mapping[str, Any]) -> str:
    kind = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number",
            "list[str]": "a list of strings", "table[str]": "a table of strings"}[rule["kind"]]
    if rule["choices"] is not None:
        return f"{kind}, one of {', '.join(map(str, rule['choices']))}"
    parts = [kind]
    if rule["min"] is not None and rule["max"] is not None:
        parts.append(f"from {rule['min']} to {rule['max']}")
    elif rule["min"] is not None:
        parts.append(f">= {rule['min']}")
    if rule["pattern"] is not None:
        parts.append(f"matching {rule['pattern']}")
    return " ".join(parts)


def _validate_job_types(raw: Any, tiers: tuple[TierConfig, ...], where: Where) -> dict[str, JobTypeConfig]:
    """`type = "tier"`, or `[job_types.<type>]` with tier, timeout_seconds, isolation, breaker_*."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(where("job_types"), "job_types", raw,
                          "a table mapping at least one job type to a tier")
    by_name = {t.name: t for t in tiers}
    settings = {}
    for job_type, value in raw.items():
        path = f"job_types.{job_type}"
        if not re.search(_JOB_TYPE, job_type):
            raise ConfigError(where(path), path, job_type, f"a job type name matching {_JOB_TYPE}")
        if isinstance(value, str):
            value = {"tier": value}
            tier_path = path
        else:
            tier_path = f"{path}.tier"
        def origin(_field: str, _path: str = path) -> str:
            return where(_path)  # a job type's fields come from the file that names the type

        job = _build(JobTypeConfig, value, path, origin)
        if job.tier not in by_name:
            raise ConfigError(where(path), tier_path, job.tier, f"a known tier: {', '.join(by_name)}")
        if not by_name[job.tier].is_service:
            # run-one runs one job per container: no thread pool to leave, no breaker to trip.
            for field, default in (("isolation", "thread"), ("breaker_failures", DEFAULT_BREAKER[0]),
                                   ("breaker_cooldown_seconds", DEFAULT_BREAKER[1])):
                if getattr(job, field) != default:
                    raise ConfigError(where(path), f"{path}.{field}", getattr(job, field),
                                      f"{default!r} for a job type of batch tier {job.tier!r} (each "
                                      "Batch job runs alone in its own container)")
        limit = by_name[job.tier].max_job_seconds
        if job.timeout_seconds > limit:
            raise ConfigError(where(path), f"{path}.timeout_seconds", job.timeout_seconds,
                              f"<= tiers[{job.tier}].max_job_seconds ({limit}), which sets the visibility "
                              "timeout")
        settings[job_type] = job
    return settings


PROD = "prod"


def _check_access(config: EnvironmentConfig, where: Where) -> None:
    """prod can never be open; an external issuer needs its audience."""
    auth = config.auth
    if config.name == PROD and config.api_is_open:
        raise ConfigError(where("auth.mode"), "auth.mode", auth.mode,
                          "jwt in prod: an internet-facing API without auth accepts jobs from anyone "
                          "(or set api.internal = true for a VPC-only API)")
    if auth.mode == "jwt" and auth.issuer and not auth.audience:
        raise ConfigError(where("auth.audience"), "auth.audience", auth.audience,
                          "the audience (aud or resource-server identifier) the issuer's tokens carry, "
                          "required with auth.issuer")


def _check_consistency(config: EnvironmentConfig, where: Where) -> None:
    """Rules that tie fields together; each names the field that has to change."""
    app, net, api = config.app, config.network, config.api
    if net.vpc_id and not (app.account and app.region):
        raise ConfigError(where("network.vpc_id"), "network.vpc_id", net.vpc_id,
                          "importing a VPC needs app.account and app.region (the lookup needs an account)")
    if net.vpc_id and net.vpc_endpoints:
        raise ConfigError(where("network.vpc_endpoints"), "network.vpc_endpoints", net.vpc_endpoints,
                          "false with network.vpc_id: endpoints are added only to a VPC JobFleet creates "
                          "(an imported VPC may already have them, and private DNS names would clash)")
    if net.nat_gateways > net.max_azs:
        raise ConfigError(where("network.nat_gateways"), "network.nat_gateways", net.nat_gateways,
                          f"from 1 to network.max_azs ({net.max_azs})")
    try:
        cidr = ipaddress.IPv4Network(net.cidr)
    except ValueError:
        raise ConfigError(where("network.cidr"), "network.cidr", net.cidr,
                          "an IPv4 network such as 10.40.0.0/16") from None
    if not 16 <= cidr.prefixlen <= 24:
        raise ConfigError(where("network.cidr"), "network.cidr", net.cidr, "a prefix from /16 to /24")
    if api.memory_mib not in FARGATE_MEMORY[api.cpu]:
        raise ConfigError(where("api.memory_mib"), "api.memory_mib", api.memory_mib,
                          f"for api.cpu {api.cpu}: one of {_short(FARGATE_MEMORY[api.cpu])}")
    if api.min_tasks > api.max_tasks:
        raise ConfigError(where("api.min_tasks"), "api.min_tasks", api.min_tasks,
                          f"<= api.max_tasks ({api.max_tasks})")
    _check_access(config, where)
    names = [t.name for t in config.tiers]
    for tier in config.tiers:
        _check_tier(tier, where)
    for tier_name in config.redrive.scheduled_tiers:
        if tier_name not in names:
            raise ConfigError(where("redrive.scheduled_tiers"), "redrive.scheduled_tiers", tier_name,
                              f"a known tier: {', '.join(names)}")
    if config.redrive.scheduled_tiers and not config.redrive.scheduled_error_types:
        # The scheduled redrive moves transient failures only; an empty filter would be refused
        # by the function (filter.errorTypes must be a non-empty list) every hour.
        raise ConfigError(where("redrive.scheduled_tiers"), "redrive.scheduled_error_types",
                          list(config.redrive.scheduled_error_types),
                          "at least one error type when redrive.scheduled_tiers is set")
    _check_guard_waivers(config, where)
    if config.batch_tiers:
        _check_batch(config, where)
    if config.batch_tiers and config.batch.on_demand_max_vcpus > config.batch.max_vcpus * 4:
        raise ConfigError(where("batch.on_demand_max_vcpus"), "batch.on_demand_max_vcpus",
                          config.batch.on_demand_max_vcpus,
                          f"at most 4 x batch.max_vcpus ({config.batch.max_vcpus * 4})")


def guard_waivers_needed(config: EnvironmentConfig) -> dict[str, tuple[str, Any]]:
    """{control: (field, value)}: the Control Tower controls this config's values fail."""
    needed: dict[str, tuple[str, Any]] = {}
    if config.app.log_retention_days < GUARD_MIN_RETENTION_DAYS:
        needed[LOG_RETENTION_CONTROL] = ("app.log_retention_days", config.app.log_retention_days)
    elif (config.network.flow_log_retention_days < GUARD_MIN_RETENTION_DAYS
          and not config.network.vpc_id):
        needed[LOG_RETENTION_CONTROL] = ("network.flow_log_retention_days",
                                         config.network.flow_log_retention_days)
    if config.app.log_encryption != "kms":
        needed[LOG_ENCRYPTION_CONTROL] = ("app.log_encryption", config.app.log_encryption)
    if config.api.allow_plain_http and not config.api.certificate_arn:
        needed[HTTPS_REDIRECT_CONTROL] = ("api.allow_plain_http", True)
    if not config.api.deletion_protection:
        needed[DELETION_PROTECTION_CONTROL] = ("api.deletion_protection", False)
    return needed


def _check_guard_waivers(config: EnvironmentConfig, where: Where) -> None:
    """A value below a Control Tower control needs a waiver; a waiver needs such a value."""
    needed = guard_waivers_needed(config)
    for control, (field, value) in needed.items():
        if control not in config.guard.waivers:
            raise ConfigError(where(field), field, value,
                              f"a value that passes Control Tower's {control}, or a waiver with its "
                              f"reason in [guard] waivers (\"{control}\" = \"...\")")
    for control in config.guard.waivers:
        if control not in needed:
            path = f"guard.waivers.{control}"
            raise ConfigError(where("guard.waivers"), path, config.guard.waivers[control],
                              "no waiver: no setting of this environment fails that control")


def _check_batch(config: EnvironmentConfig, where: Where) -> None:
    batch = config.batch
    first = config.batch_tiers[0]
    for tier in config.batch_tiers[1:]:
        if tier.architecture != first.architecture:
            path = f"tiers[{tier.name}].architecture"
            raise ConfigError(where(path), path, tier.architecture,
                              f"{first.architecture!r} like tiers[{first.name}]: batch tiers share the "
                              "compute environments")
    if batch.compute == "ec2-spot":
        arm = first.architecture == "arm64"
        for name in batch.instance_classes:
            if bool(re.search(_ARM_INSTANCE_CLASS, name)) != arm:
                allowed = ("Graviton instance classes or types for arm64 batch tiers, e.g. m7g, c7g, "
                           "r7g.2xlarge" if arm else "x86-64 instance classes or types (the batch tiers "
                           "are x86_64), e.g. m6i, c7i, r6i.2xlarge")
                raise ConfigError(where("batch.instance_classes"), "batch.instance_classes", name, allowed)
        for tier in config.batch_tiers:
            if tier.ephemeral_storage_gib != DEFAULT_EPHEMERAL_GIB:
                path = f"tiers[{tier.name}].ephemeral_storage_gib"
                raise ConfigError(where(path), path, tier.ephemeral_storage_gib,
                                  f"{DEFAULT_EPHEMERAL_GIB} with batch.compute = \"ec2-spot\" (jobs use the "
                                  "instance's storage; only Fargate sizes task storage)")
        return
    for tier in config.batch_tiers:
        prefix = f"tiers[{tier.name}]"
        if tier.cpu not in FARGATE_MEMORY:
            raise ConfigError(where(f"{prefix}.cpu"), f"{prefix}.cpu", tier.cpu,
                              "with batch.compute = \"fargate-spot\": a Fargate CPU size, one of "
                              f"{', '.join(map(str, FARGATE_MEMORY))}")
        if tier.memory_mib not in FARGATE_MEMORY[tier.cpu]:
            raise ConfigError(where(f"{prefix}.memory_mib"), f"{prefix}.memory_mib", tier.memory_mib,
                              f"with batch.compute = \"fargate-spot\" and cpu {tier.cpu}: one of "
                              f"{_short(FARGATE_MEMORY[tier.cpu])}")


def _check_tier(tier: TierConfig, where: Where) -> None:
    prefix = f"tiers[{tier.name}]"

    def fail(field: str, allowed: str) -> None:
        path = f"{prefix}.{field}"
        raise ConfigError(where(path), path, getattr(tier, field), allowed)

    if tier.expected_job_seconds > tier.max_job_seconds:
        fail("expected_job_seconds", f"<= max_job_seconds ({tier.max_job_seconds})")
    for name in tier.secrets:
        if name in tier.environment:
            path = f"{prefix}.secrets"
            raise ConfigError(where(path), path, name, "a name not also set in environment")
    if tier.secrets_kms_key_arn and not any(s.source == "secretsmanager" for s in tier.secrets.values()):
        fail("secrets_kms_key_arn", "empty unless secrets names a secretsmanager: secret")
    if tier.latency_objective_seconds < tier.expected_job_seconds:
        fail("latency_objective_seconds",
             f">= expected_job_seconds ({tier.expected_job_seconds:g}): a backlog target below one "
             "message per task cannot be met")
    limit = SQS_MAX_VISIBILITY_SECONDS - VISIBILITY_MARGIN_SECONDS
    if tier.max_job_seconds > limit:
        fail("max_job_seconds", f"<= {limit}: the visibility timeout (max_job_seconds + "
             f"{VISIBILITY_MARGIN_SECONDS}) cannot exceed SQS's {SQS_MAX_VISIBILITY_SECONDS}")
    if tier.dlq_retention_days <= tier.queue_retention_days:
        fail("dlq_retention_days", f"> queue_retention_days ({tier.queue_retention_days}): SQS keeps "
             "the original enqueue time, so a shorter DLQ retention expires failed messages early")
    if tier.is_service:
        if tier.max_tasks < 1:
            fail("max_tasks", "from 1 to 1000 for a service tier")
        if tier.min_tasks > tier.max_tasks:
            fail("min_tasks", f"<= max_tasks ({tier.max_tasks})")
        if tier.cpu not in FARGATE_MEMORY:
            fail("cpu", f"a Fargate CPU size, one of {', '.join(map(str, FARGATE_MEMORY))}")
        if tier.memory_mib not in FARGATE_MEMORY[tier.cpu]:
            fail("memory_mib", f"for cpu {tier.cpu}: one of {_short(FARGATE_MEMORY[tier.cpu])}")
        if tier.stop_timeout_seconds > tier.max_job_seconds + VISIBILITY_MARGIN_SECONDS:
            fail("stop_timeout_seconds", "<= the visibility timeout")
    else:
        if tier.min_tasks or tier.max_tasks:
            fail("min_tasks" if tier.min_tasks else "max_tasks",
                 "0 for a batch tier (AWS Batch scales by max_vcpus)")
        if tier.cpu % 1024:
            fail("cpu", "a multiple of 1024 (whole vCPUs) for a batch tier")
        if tier.max_receive_count > BATCH_MAX_ATTEMPTS:
            fail("max_receive_count", f"1..{BATCH_MAX_ATTEMPTS} for a batch tier: AWS Batch runs a job at "
                 "most 10 times (its attempts = the larger of this and batch.spot_retry_attempts)")


def _warnings(config: EnvironmentConfig, where: Where) -> tuple[str, ...]:
    """Lines synth prints: tiers still running the examples, images that are not pinned."""
    lines = []
    examples = [t.name for t in config.tiers if not t.handlers]
    if examples:
        field = f"tiers[{','.join(examples)}].handlers"
        modules = ", ".join(EXAMPLE_HANDLERS)
        lines.append(f"warning: {where(f'tiers[{examples[0]}].handlers')}: {field} = []: environment "
                     f"{config.name!r} still runs JobFleet's example handlers ({modules}); "
                     "name your own modules")
    images = [(f"tiers[{t.name}].image", t.image) for t in config.tiers] + [("api.image", config.api.image)]
    for field, value in images:
        warning = image_warning(parse_image(value))
        if warning:
            lines.append(f"warning: {where(field)}: {field} = {value!r}: {warning}")
    return tuple(lines)


def _short(values: tuple[int, ...]) -> str:
    if len(values) <= 6:
        return ", ".join(map(str, values))
    return f"{values[0]} to {values[-1]} in steps of {values[1] - values[0]}"
