"""Worker settings, read once from the environment the CDK stack sets; bad values fail naming the variable."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from jobfleet_contract import environment as names
from jobfleet_contract.environment import ConfigError, env_number, parse_handlers, parse_job_timeouts
from jobfleet_contract.status import DEFAULT_TTL_DAYS

DEFAULT_HEALTH_FILE = "/tmp/jobfleet-worker.health"
DEFAULT_HANDLERS = "worker.examples"


@dataclass(frozen=True)
class WorkerConfig:
    queue_url: str
    dlq_url: str
    max_receive_count: int = 5
    concurrency: int = 4
    handler_modules: tuple[str, ...] = (DEFAULT_HANDLERS,)
    job_timeouts: dict[str, float] = field(default_factory=dict)
    job_max_seconds: float | None = None  # None: the queue's visibility timeout
    memory_high_water: float = 0.8
    memory_low_water: float = 0.6
    memory_limit_bytes: int | None = None  # None: cgroup limit, else host memory
    stop_timeout_seconds: float = 100.0
    status_table: str | None = None
    status_ttl_days: float = DEFAULT_TTL_DAYS
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
        missing = [name for name in (names.QUEUE_URL, names.DLQ_URL) if not env.get(name)]
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
        modules = parse_handlers(env, DEFAULT_HANDLERS)
        status_table, status_ttl_days = names.status_table_settings(env, DEFAULT_TTL_DAYS)
        extra = {"worker_id": env[names.WORKER_ID]} if env.get(names.WORKER_ID) else {}
        return cls(
            queue_url=env[names.QUEUE_URL],
            dlq_url=env[names.DLQ_URL],
            max_receive_count=env_number(env, names.MAX_RECEIVE_COUNT, 5, minimum=1, maximum=1000,
                                         integer=True),
            concurrency=env_number(env, names.WORKER_CONCURRENCY, 4, minimum=1, maximum=1024, integer=True),
            handler_modules=modules or (DEFAULT_HANDLERS,),
            job_timeouts=parse_job_timeouts(env),
            job_max_seconds=env_number(env, names.JOB_MAX_SECONDS, None, minimum=1, maximum=43200),
            memory_high_water=high,
            memory_low_water=low,
            memory_limit_bytes=limit_mib * 1024 * 1024 if limit_mib else None,
            stop_timeout_seconds=env_number(
                env, names.WORKER_STOP_TIMEOUT_SECONDS, 100.0, minimum=1, maximum=3600
            ),
            status_table=status_table,
            status_ttl_days=status_ttl_days,
            tier=env.get(names.TIER, "default") or "default",
            isolation=isolation,
            recycle_after_jobs=env_number(
                env, "WORKER_RECYCLE_AFTER_JOBS", None, minimum=1, maximum=10**9, integer=True
            ),
            recycle_rss_bytes=rss_mib * 1024 * 1024 if rss_mib else None,
            health_file=env.get(names.HEALTH_FILE) or DEFAULT_HEALTH_FILE,
            poll_wait_seconds=env_number(
                env, names.WORKER_POLL_WAIT_SECONDS, 20, minimum=0, maximum=20, integer=True
            ),
            backoff_base_seconds=env_number(
                env, names.WORKER_BACKOFF_BASE_SECONDS, 2.0, minimum=0, maximum=43200
            ),
            backoff_max_seconds=env_number(
                env, names.WORKER_BACKOFF_MAX_SECONDS, 900.0, minimum=0, maximum=43200
            ),
            breaker_failure_threshold=env_number(
                env, "WORKER_BREAKER_FAILURES", 5, minimum=1, maximum=10**6, integer=True
            ),
            breaker_cooldown_seconds=env_number(
                env, "WORKER_BREAKER_COOLDOWN_SECONDS", 60.0, minimum=1, maximum=900
            ),
            **extra,
        )
