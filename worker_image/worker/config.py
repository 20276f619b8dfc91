"""Worker settings, read once from the environment the CDK stack sets; bad values fail naming the variable."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_HEALTH_FILE = "/tmp/jobfleet-worker.health"


class ConfigError(ValueError):
    pass


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


def aws_region(env: Mapping[str, str] = os.environ) -> str | None:
    """The region for AWS clients: boto3 reads only AWS_DEFAULT_REGION, while ECS, Lambda and most
    tooling set AWS_REGION; the latter wins when both are set."""
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def parse_job_timeouts(env: Mapping[str, str]) -> dict[str, float]:
    raw = env.get("JOB_TIMEOUTS", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"JOB_TIMEOUTS is not JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 43200 for v in data.values()
    ):
        raise ConfigError("JOB_TIMEOUTS must be a JSON object of job type -> seconds in (0, 43200]")
    return {str(k): float(v) for k, v in data.items()}


@dataclass(frozen=True)
class WorkerConfig:
    queue_url: str
    dlq_url: str
    max_receive_count: int = 5
    concurrency: int = 4
    handler_modules: tuple[str, ...] = ("worker.examples",)
    job_timeouts: dict[str, float] = field(default_factory=dict)
    job_max_seconds: float | None = None  # None: the queue's visibility timeout
    memory_high_water: float = 0.8
    memory_low_water: float = 0.6
    memory_limit_bytes: int | None = None  # None: cgroup limit, else host memory
    stop_timeout_seconds: float = 100.0
    status_table: str | None = None
    tier: str = "default"
    isolation: str = "thread"
    recycle_after_jobs: int | None = None
    recycle_rss_bytes: int | None = None
    health_file: str = DEFAULT_HEALTH_FILE
    poll_wait_seconds: int = 20
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 900.0
    breaker_failure_threshold: int = 5
    breaker_cooldown_seconds: float = 60.0
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    def timeout_for(self, job_type: str, queue_visibility_timeout: int) -> float:
        """Per-type maximum duration: JOB_TIMEOUTS entry, else JOB_MAX_SECONDS, else visibility timeout."""
        default = (
            self.job_max_seconds if self.job_max_seconds is not None else float(queue_visibility_timeout)
        )
        return self.job_timeouts.get(job_type, default)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerConfig:
        missing = [name for name in ("QUEUE_URL", "DLQ_URL") if not env.get(name)]
        if missing:
            raise ConfigError(f"required environment variable(s) not set: {', '.join(missing)}")
        high = env_number(env, "WORKER_MEMORY_HIGH_WATER", 0.8, minimum=0.05, maximum=1.0)
        low = env_number(env, "WORKER_MEMORY_LOW_WATER", 0.6, minimum=0.0, maximum=1.0)
        if low >= high:
            raise ConfigError(f"WORKER_MEMORY_LOW_WATER={low} must be below WORKER_MEMORY_HIGH_WATER={high}")
        isolation = env.get("WORKER_ISOLATION", "thread").strip() or "thread"
        if isolation not in ("thread", "process"):
            raise ConfigError(f"WORKER_ISOLATION={isolation!r} must be 'thread' or 'process'")
        limit_mib = env_number(
            env, "WORKER_MEMORY_LIMIT_MIB", None, minimum=16, maximum=1 << 22, integer=True
        )
        rss_mib = env_number(env, "WORKER_RECYCLE_RSS_MIB", None, minimum=16, maximum=1 << 22, integer=True)
        modules = tuple(
            m.strip() for m in env.get("WORKER_HANDLERS", "worker.examples").split(",") if m.strip()
        )
        extra = {"worker_id": env["WORKER_ID"]} if env.get("WORKER_ID") else {}
        return cls(
            queue_url=env["QUEUE_URL"],
            dlq_url=env["DLQ_URL"],
            max_receive_count=env_number(env, "MAX_RECEIVE_COUNT", 5, minimum=1, maximum=1000, integer=True),
            concurrency=env_number(env, "WORKER_CONCURRENCY", 4, minimum=1, maximum=1024, integer=True),
            handler_modules=modules or ("worker.examples",),
            job_timeouts=parse_job_timeouts(env),
            job_max_seconds=env_number(env, "JOB_MAX_SECONDS", None, minimum=1, maximum=43200),
            memory_high_water=high,
            memory_low_water=low,
            memory_limit_bytes=limit_mib * 1024 * 1024 if limit_mib else None,
            stop_timeout_seconds=env_number(
                env, "WORKER_STOP_TIMEOUT_SECONDS", 100.0, minimum=1, maximum=3600
            ),
            status_table=env.get("STATUS_TABLE") or None,
            tier=env.get("TIER", "default") or "default",
            isolation=isolation,
            recycle_after_jobs=env_number(
                env, "WORKER_RECYCLE_AFTER_JOBS", None, minimum=1, maximum=10**9, integer=True
            ),
            recycle_rss_bytes=rss_mib * 1024 * 1024 if rss_mib else None,
            health_file=env.get("HEALTH_FILE") or DEFAULT_HEALTH_FILE,
            poll_wait_seconds=env_number(
                env, "WORKER_POLL_WAIT_SECONDS", 20, minimum=0, maximum=20, integer=True
            ),
            backoff_base_seconds=env_number(
                env, "WORKER_BACKOFF_BASE_SECONDS", 2.0, minimum=0, maximum=43200
            ),
            backoff_max_seconds=env_number(
                env, "WORKER_BACKOFF_MAX_SECONDS", 900.0, minimum=0, maximum=43200
            ),
            breaker_failure_threshold=env_number(
                env, "WORKER_BREAKER_FAILURES", 5, minimum=1, maximum=10**6, integer=True
            ),
            breaker_cooldown_seconds=env_number(
                env, "WORKER_BREAKER_COOLDOWN_SECONDS", 60.0, minimum=1, maximum=900
            ),
            **extra,
        )
