"""Each local process's environment: the function the stacks call for that container
(jobfleet_contract.environment), given local values, plus moto's endpoint and fake credentials."""

from __future__ import annotations

import os
from pathlib import Path

from jobfleet_config.config import EnvironmentConfig, TierConfig
from jobfleet_contract import environment as names
from jobfleet_tools.local.processes import HOST
from jobfleet_tools.local.resources import LocalAws

POLL_WAIT_SECONDS = 2  # short long-polls so that Ctrl-C is answered within seconds


def base_env(aws: LocalAws) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=aws.region,
        AWS_DEFAULT_REGION=aws.region, AWS_ENDPOINT_URL=aws.endpoint,
        PYTHONUNBUFFERED="1",
    )
    return env


def api_env(aws: LocalAws, config: EnvironmentConfig, port: int, auth: names.ApiAuth) -> dict[str, str]:
    """The compute stack's environment for the API container."""
    return {**base_env(aws), **names.api_environment(
        tier_queue_urls=aws.queue_urls, job_types=config.job_types, status_table=aws.table_name,
        status_ttl_days=config.status.ttl_days, max_payload_bytes=config.api.max_payload_bytes,
        tier_max_payload_bytes=config.tier_payload_limits(), port=port, auth=auth,
    ), names.API_HOST: HOST}


def worker_env(aws: LocalAws, config: EnvironmentConfig, tier: TierConfig, handlers: str,
               run_dir: Path) -> dict[str, str]:
    """The worker service's container environment."""
    env = {**base_env(aws), **names.worker_environment(
        tier=tier.name, queue_url=aws.queue_urls[tier.name], dlq_url=aws.dlq_urls[tier.name],
        max_receive_count=tier.max_receive_count, concurrency=tier.concurrency, handlers=handlers,
        max_job_seconds=tier.max_job_seconds, stop_timeout_seconds=tier.stop_timeout_seconds,
        status_table=aws.table_name, status_ttl_days=config.status.ttl_days,
        health_file=str(health_file(run_dir, tier)),
    ), names.WORKER_ID: f"local-{tier.name}"}
    env.setdefault(names.WORKER_POLL_WAIT_SECONDS, str(POLL_WAIT_SECONDS))
    return env


def health_file(run_dir: Path, tier: TierConfig) -> Path:
    return run_dir / f"{tier.name}.health"


def batch_job_env(aws: LocalAws, config: EnvironmentConfig, tier: TierConfig, handlers: str, *,
                  attempt: int, job_id: str) -> dict[str, str]:
    """The Batch job definition's environment, plus what AWS Batch sets and the local handlers."""
    return {**base_env(aws), **names.batch_job_environment(
        tier=tier.name, status_table=aws.table_name, status_ttl_days=config.status.ttl_days,
        max_job_seconds=tier.max_job_seconds, region=aws.region,
    ), names.WORKER_HANDLERS: handlers, names.AWS_BATCH_JOB_ATTEMPT: str(attempt),
        names.AWS_BATCH_JOB_ID: job_id}
