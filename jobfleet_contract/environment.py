"""Container environment: every variable name, the parsers the runtimes read them with, and one
function per runtime that builds a container's environment. The stacks and local mode both call the
builders, so what a deployed container gets and what a local process gets cannot drift apart.

Builders take plain values; the stacks pass CloudFormation tokens as strings and their own
`to_json` (`Stack.to_json_string`, which resolves tokens inside JSON at deploy time).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

# --- names -------------------------------------------------------------------------------------------
# Worker service (python -m worker run)
TIER = "TIER"
QUEUE_URL = "QUEUE_URL"
DLQ_URL = "DLQ_URL"
MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
WORKER_CONCURRENCY = "WORKER_CONCURRENCY"
WORKER_HANDLERS = "WORKER_HANDLERS"
JOB_MAX_SECONDS = "JOB_MAX_SECONDS"
JOB_TIMEOUTS = "JOB_TIMEOUTS"
WORKER_STOP_TIMEOUT_SECONDS = "WORKER_STOP_TIMEOUT_SECONDS"
HEALTH_FILE = "HEALTH_FILE"
WORKER_ID = "WORKER_ID"
WORKER_POLL_WAIT_SECONDS = "WORKER_POLL_WAIT_SECONDS"
WORKER_BACKOFF_BASE_SECONDS = "WORKER_BACKOFF_BASE_SECONDS"
WORKER_BACKOFF_MAX_SECONDS = "WORKER_BACKOFF_MAX_SECONDS"
# Status table (worker, run-one, API, redrive)
STATUS_TABLE = "STATUS_TABLE"
STATUS_TTL_DAYS = "STATUS_TTL_DAYS"
# Job API (python -m worker api)
TIER_QUEUES = "TIER_QUEUES"
JOB_TYPES = "JOB_TYPES"
MAX_PAYLOAD_BYTES = "MAX_PAYLOAD_BYTES"
TIER_MAX_PAYLOAD_BYTES = "TIER_MAX_PAYLOAD_BYTES"
PORT = "PORT"
API_HOST = "API_HOST"
# Job API access control (worker/auth.py)
AUTH_MODE = "AUTH_MODE"
AUTH_ISSUER = "AUTH_ISSUER"
AUTH_AUDIENCE = "AUTH_AUDIENCE"
AUTH_JWKS_URL = "AUTH_JWKS_URL"
AUTH_SCOPES = "AUTH_SCOPES"
RATE_LIMIT_PER_CLIENT = "RATE_LIMIT_PER_CLIENT"
# JSON {tier: {"cluster": name, "service": name}}: the tiers the API wakes from zero tasks
WAKE_SERVICES = "WAKE_SERVICES"
WAKE_INTERVAL_SECONDS = "WAKE_INTERVAL_SECONDS"
# Batch job (python -m worker run-one); AWS Batch itself sets the AWS_BATCH_* ones.
JOB_ENVELOPE = "JOB_ENVELOPE"
AWS_BATCH_JOB_ID = "AWS_BATCH_JOB_ID"
AWS_BATCH_JOB_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
# Batch feed function (lambda/batch_submit): where and under which name it submits each message.
JOB_QUEUE = "JOB_QUEUE"
JOB_DEFINITION = "JOB_DEFINITION"
JOB_NAME = "JOB_NAME"
# Redrive function (TIER_QUEUES there maps tier -> {"queueUrl", "dlqUrl"})
MAX_REDRIVES = "MAX_REDRIVES"
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
# The redrive function's POWERTOOLS_SERVICE_NAME: its logs' and traces' service.
REDRIVE_SERVICE_NAME = "jobfleet-redrive"
# Per job type, from [job_types] (worker; JOB_TIMEOUTS above also reaches run-one)
JOB_ISOLATION = "JOB_ISOLATION"
JOB_BREAKERS = "JOB_BREAKERS"
# Results and job events (worker and run-one write, the API reads results)
RESULTS_BUCKET = "RESULTS_BUCKET"
RESULTS_INLINE_MAX_BYTES = "RESULTS_INLINE_MAX_BYTES"
RESULTS_URL_SECONDS = "RESULTS_URL_SECONDS"
JOB_EVENT_BUS = "JOB_EVENT_BUS"
JOBFLEET_ENVIRONMENT = "JOBFLEET_ENVIRONMENT"
# `python -m worker health`
HEALTH_MAX_AGE_SECONDS = "HEALTH_MAX_AGE_SECONDS"
# Set by ECS and Lambda themselves; boto3 reads only AWS_DEFAULT_REGION (see aws_region).
AWS_REGION = "AWS_REGION"
# Read by a library the runtime uses, not by its own parser.
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
READ_BY_LIBRARIES = frozenset({AWS_DEFAULT_REGION, POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL})

# ECS stopTimeout seconds kept back from the worker's own drain budget, so that it has released
# unstarted messages and exited before ECS sends SIGKILL.
STOP_MARGIN_SECONDS = 5


class ConfigError(ValueError):
    """A variable is missing or malformed; the message names it."""


# --- parsing -----------------------------------------------------------------------------------------


@overload
def env_number(env: Mapping[str, str], name: str, default: int, *, minimum: float, maximum: float,
               integer: Literal[True]) -> int: ...
@overload
def env_number(env: Mapping[str, str], name: str, default: None, *, minimum: float, maximum: float,
               integer: Literal[True]) -> int | None: ...
@overload
def env_number(env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float,
               integer: Literal[False] = False) -> float: ...
@overload
def env_number(env: Mapping[str, str], name: str, default: None, *, minimum: float, maximum: float,
               integer: Literal[False] = False) -> float | None: ...
def env_number(
    env: Mapping[str, str],
    name: str,
    default: float | None,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a{'n integer' if integer else ' number'}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw} is outside the allowed range [{minimum}, {maximum}]")
    return value


def env_json_object(env: Mapping[str, str], name: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON object variable; {} when optional and unset."""
    raw = env.get(name, "").strip()
    if not raw:
        if required:
            raise ConfigError(f"required environment variable not set: {name}")
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return data


def parse_job_timeouts(env: Mapping[str, str]) -> dict[str, float]:
    data = env_json_object(env, JOB_TIMEOUTS, required=False)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 43200
               for v in data.values()):
        raise ConfigError(f"{JOB_TIMEOUTS} must be a JSON object of job type -> seconds in (0, 43200]")
    return {str(k): float(v) for k, v in data.items()}


def parse_handlers(env: Mapping[str, str], default: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in (env.get(WORKER_HANDLERS) or default).split(",") if m.strip())


def status_table_settings(env: Mapping[str, str], default_ttl_days: float) -> tuple[str | None, float]:
    """(STATUS_TABLE or None when tracking is off, STATUS_TTL_DAYS)."""
    ttl_days = env_number(env, STATUS_TTL_DAYS, default_ttl_days, minimum=1, maximum=3650)
    return env.get(STATUS_TABLE) or None, ttl_days


def aws_region(env: Mapping[str, str]) -> str | None:
    """The region for AWS clients: boto3 reads only AWS_DEFAULT_REGION, while ECS, Lambda and most
    tooling set AWS_REGION; the latter wins when both are set."""
    return env.get(AWS_REGION) or env.get(AWS_DEFAULT_REGION) or None


def parse_wake_services(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """WAKE_SERVICES -> {tier: (cluster, service)}; {} when unset (no tier to wake)."""
    services = {}
    for tier, target in env_json_object(env, WAKE_SERVICES, required=False).items():
        cluster = target.get("cluster") if isinstance(target, dict) else None
        service = target.get("service") if isinstance(target, dict) else None
        if not (isinstance(cluster, str) and cluster and isinstance(service, str) and service):
            raise ConfigError(f"{WAKE_SERVICES}[{tier!r}] = {target!r}: expected "
                              '{"cluster": "<cluster name>", "service": "<service name>"}')
        services[tier] = (cluster, service)
    return services


def parse_job_isolation(env: Mapping[str, str]) -> dict[str, str]:
    """JOB_ISOLATION: JSON job type -> "thread" | "process" (types not named use WORKER_ISOLATION)."""
    data = env_json_object(env, JOB_ISOLATION, required=False)
    if not all(v in ("thread", "process") for v in data.values()):
        raise ConfigError(f'{JOB_ISOLATION} must be a JSON object of job type -> "thread" or "process"')
    return {str(k): v for k, v in data.items()}


def parse_job_breakers(env: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    """JOB_BREAKERS: JSON job type -> {"failures": n, "cooldownSeconds": s} (others: WORKER_BREAKER_*)."""
    parsed: dict[str, tuple[int, float]] = {}
    for job_type, value in env_json_object(env, JOB_BREAKERS, required=False).items():
        failures = value.get("failures") if isinstance(value, dict) else None
        cooldown = value.get("cooldownSeconds") if isinstance(value, dict) else None
        if not (_number(failures, 1, 10**6, integer=True) and _number(cooldown, 1, 900)):
            raise ConfigError(
                f'{JOB_BREAKERS}[{job_type!r}] must be {{"failures": 1..1000000, "cooldownSeconds": 1..900}}')
        assert isinstance(failures, int) and isinstance(cooldown, int | float)  # checked just above
        parsed[str(job_type)] = (failures, float(cooldown))
    return parsed


def _number(value: object, minimum: float, maximum: float, *, integer: bool = False) -> bool:
    kinds = int if integer else int | float
    return isinstance(value, kinds) and not isinstance(value, bool) and minimum <= value <= maximum


def completion_settings(env: Mapping[str, str]) -> tuple[str | None, str | None, str]:
    """(RESULTS_BUCKET or None, JOB_EVENT_BUS or None, JOBFLEET_ENVIRONMENT)."""
    return (env.get(RESULTS_BUCKET, "").strip() or None, env.get(JOB_EVENT_BUS, "").strip() or None,
            env.get(JOBFLEET_ENVIRONMENT, ""))


@dataclass(frozen=True)
class BatchFeedSettings:
    """What the batch feed function submits to: the job queue and job definition (ARNs or names)
    and the job name every job gets."""

    job_queue: str
    job_definition: str
    job_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchFeedSettings:
        values = {}
        for name in (JOB_QUEUE, JOB_DEFINITION, JOB_NAME):
            values[name] = env.get(name, "").strip()
            if not values[name]:
                raise ConfigError(f"required environment variable not set: {name}")
        return cls(values[JOB_QUEUE], values[JOB_DEFINITION], values[JOB_NAME])


def parse_max_redrives(env: Mapping[str, str]) -> int | None:
    """MAX_REDRIVES: unset or empty disables quarantine, otherwise a positive integer."""
    return env_number(env, MAX_REDRIVES, None, minimum=1, maximum=10**6, integer=True)


# --- one builder per runtime ---------------------------------------------------------------------------


def worker_environment(*, tier: str, queue_url: str, dlq_url: str, max_receive_count: int,
                       concurrency: int, handlers: str, max_job_seconds: int, stop_timeout_seconds: int,
                       status_table: str, status_ttl_days: int, health_file: str) -> dict[str, str]:
    """A worker service container (`python -m worker run`); ``stop_timeout_seconds`` is ECS's."""
    return {
        TIER: tier,
        QUEUE_URL: queue_url,
        DLQ_URL: dlq_url,
        MAX_RECEIVE_COUNT: str(max_receive_count),
        WORKER_CONCURRENCY: str(concurrency),
        WORKER_HANDLERS: handlers,
        JOB_MAX_SECONDS: str(max_job_seconds),
        WORKER_STOP_TIMEOUT_SECONDS: str(worker_drain_seconds(stop_timeout_seconds)),
        STATUS_TABLE: status_table,
        STATUS_TTL_DAYS: str(status_ttl_days),
        HEALTH_FILE: health_file,
    }


def worker_drain_seconds(stop_timeout_seconds: int) -> int:
    return max(1, stop_timeout_seconds - STOP_MARGIN_SECONDS)


@dataclass(frozen=True)
class ApiAuth:
    """Who the job API admits: ``mode`` "jwt" (tokens of ``issuer`` for ``audience``, scopes
    ``{"submit", "read", "readAny"}`` -> full scope strings) or "none"; requests/s per client."""

    mode: str = "none"
    issuer: str = ""
    audience: str = ""
    scopes: Mapping[str, str] = field(default_factory=dict)
    rate_limit_per_client: float = 0.0


def auth_scopes(audience: str) -> dict[str, str]:
    """The full scope strings tokens carry for ``audience`` (a Cognito resource server identifier)."""
    return {"submit": f"{audience}/submit", "read": f"{audience}/read", "readAny": f"{audience}/read-any"}


def api_environment(*, tier_queue_urls: Mapping[str, str], job_types: Mapping[str, str], status_table: str,
                    status_ttl_days: int, max_payload_bytes: int, tier_max_payload_bytes: Mapping[str, int],
                    port: int, auth: ApiAuth, wake_services: Mapping[str, tuple[str, str]] | None = None,
                    wake_interval_seconds: int = 10,
                    to_json: Callable[[Any], str] = json.dumps) -> dict[str, str]:
    """The job API container (`python -m worker api`); ``wake_services`` maps the tiers that scale
    to zero to their (cluster name, service name): the API starts their first task."""
    wake = {WAKE_SERVICES: to_json({tier: {"cluster": cluster, "service": service}
                                    for tier, (cluster, service) in wake_services.items()}),
            WAKE_INTERVAL_SECONDS: str(wake_interval_seconds)} if wake_services else {}
    environment = {
        TIER_QUEUES: to_json(dict(tier_queue_urls)),
        JOB_TYPES: to_json(dict(job_types)),
        STATUS_TABLE: status_table,
        STATUS_TTL_DAYS: str(status_ttl_days),
        MAX_PAYLOAD_BYTES: str(max_payload_bytes),
        TIER_MAX_PAYLOAD_BYTES: to_json(dict(tier_max_payload_bytes)),
        PORT: str(port),
        AUTH_MODE: auth.mode,
        RATE_LIMIT_PER_CLIENT: str(auth.rate_limit_per_client),
        **wake,
    }
    if auth.mode == "jwt":
        environment.update({AUTH_ISSUER: auth.issuer, AUTH_AUDIENCE: auth.audience,
                            AUTH_SCOPES: json.dumps(dict(auth.scopes), sort_keys=True)})
    return environment


def batch_job_environment(*, tier: str, handlers: str, status_table: str, status_ttl_days: int,
                          max_job_seconds: int, region: str) -> dict[str, str]:
    """A Batch job container (`python -m worker run-one`). The region is named because containers
    cannot reach instance metadata (IMDSv2, hop limit 1)."""
    return {
        TIER: tier,
        WORKER_HANDLERS: handlers,
        STATUS_TABLE: status_table,
        STATUS_TTL_DAYS: str(status_ttl_days),
        JOB_MAX_SECONDS: str(max_job_seconds),
        AWS_DEFAULT_REGION: region,
    }


def batch_feed_environment(*, job_queue: str, job_definition: str, job_name: str) -> dict[str, str]:
    """The batch feed function (`lambda/batch_submit`): one SubmitJob per batch-tier message."""
    return {JOB_QUEUE: job_queue, JOB_DEFINITION: job_definition, JOB_NAME: job_name}


def job_type_environment(*, timeouts: Mapping[str, float], isolation: Mapping[str, str],
                         breakers: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """Per-job-type settings of one tier's types (worker and run-one); only the non-empty ones."""
    values = {
        JOB_TIMEOUTS: dict(timeouts),
        JOB_ISOLATION: dict(isolation),
        JOB_BREAKERS: {t: {"failures": f, "cooldownSeconds": c} for t, (f, c) in breakers.items()},
    }
    return {name: json.dumps(value, sort_keys=True) for name, value in values.items() if value}


def completion_environment(*, results_bucket: str | None, event_bus: str | None,
                           environment_name: str) -> dict[str, str]:
    """Where a worker or run-one stores results and publishes job events (each optional)."""
    environment = {}
    if results_bucket:
        environment[RESULTS_BUCKET] = results_bucket
    if event_bus:
        environment.update({JOB_EVENT_BUS: event_bus, JOBFLEET_ENVIRONMENT: environment_name})
    return environment


def api_results_environment(*, inline_max_bytes: int, url_seconds: int) -> dict[str, str]:
    """How the job API hands results back: inline up to a size, else a presigned URL."""
    return {RESULTS_INLINE_MAX_BYTES: str(inline_max_bytes), RESULTS_URL_SECONDS: str(url_seconds)}


def redrive_environment(*, tier_queues: Mapping[str, Mapping[str, str]], max_redrives: int,
                        status_table: str, status_ttl_days: int,
                        to_json: Callable[[Any], str] = json.dumps) -> dict[str, str]:
    """The redrive function; ``tier_queues`` maps tier -> {"queueUrl", "dlqUrl"}."""
    return {
        TIER_QUEUES: to_json({name: dict(urls) for name, urls in tier_queues.items()}),
        MAX_REDRIVES: str(max_redrives),
        STATUS_TABLE: status_table,
        STATUS_TTL_DAYS: str(status_ttl_days),
        POWERTOOLS_SERVICE_NAME: REDRIVE_SERVICE_NAME,
        POWERTOOLS_LOG_LEVEL: "INFO",
    }
