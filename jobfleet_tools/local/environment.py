"""Each local process's environment: the function the stacks call for that container
(jobfleet_contract.environment), given local values, plus moto's endpoint and fake credentials."""

from __future__ import annotations

import os
from pathlib import Path

from jobfleet_config.config import EnvironmentConfig, TierConfig
from jobfleet_contract import environment as names
from jobfleet_tools.local.completion import LocalCompletion
from jobfleet_tools.local.processes import HOST, REPO
from jobfleet_tools.local.resources import LocalAws

TEAM_JOBS = REPO / "jobs"  # team handler packages: on the import path, as in the worker image
LAMBDA_DIR = REPO / "lambda"

POLL_WAIT_SECONDS = 2  # short long-polls so that Ctrl-C is answered within seconds


def base_env(aws: LocalAws) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
    pythonpath = [str(TEAM_JOBS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=aws.region,
        AWS_DEFAULT_REGION=aws.region, AWS_ENDPOINT_URL=aws.endpoint,
        PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(pythonpath),
    )
    return env


def tier_env(config: EnvironmentConfig, tier: TierConfig, completion: LocalCompletion) -> dict[str, str]:
    """What the configuration gives a tier's containers besides the runtime's own variables: its
    `environment`, its job types' settings, results and events. Locally a variable exported in your
    shell wins (point an external API at a sandbox); `secrets` are not fetched: exported ones pass
    through."""
    variables = {name: os.environ.get(name, value) for name, value in tier.environment.items()}
    return {**variables, **names.job_type_environment(**config.tier_job_settings(tier)), **completion.env()}


def tier_handlers(tier: TierConfig, extra_handlers: tuple[str, ...]) -> str:
    """WORKER_HANDLERS: the tier's configured modules (else the examples), then --handlers."""
    return ",".join(dict.fromkeys((*tier.handler_modules, *extra_handlers)))


def api_env(aws: LocalAws, config: EnvironmentConfig, port: int, auth: names.ApiAuth) -> dict[str, str]:
    """The compute stack's environment for the API container."""
    results = (names.api_results_environment(inline_max_bytes=config.results.inline_max_bytes,
                                             url_seconds=config.results.url_seconds)
               if config.results.enabled else {})
    return {**base_env(aws), **names.api_environment(
        tier_queue_urls=aws.queue_urls, job_types=config.job_types, status_table=aws.table_name,
        status_ttl_days=config.status.ttl_days, max_payload_bytes=config.api.max_payload_bytes,
        tier_max_payload_bytes=config.tier_payload_limits(), port=port, auth=auth,
    ), **results, names.API_HOST: HOST}


def worker_env(aws: LocalAws, config: EnvironmentConfig, tier: TierConfig, extra_handlers: tuple[str, ...],
               run_dir: Path, completion: LocalCompletion) -> dict[str, str]:
    """The worker service's container environment."""
    env = {**base_env(aws), **tier_env(config, tier, completion), **names.worker_environment(
        tier=tier.name, queue_url=aws.queue_urls[tier.name], dlq_url=aws.dlq_urls[tier.name],
        max_receive_count=tier.max_receive_count, concurrency=tier.concurrency,
        handlers=tier_handlers(tier, extra_handlers),
        max_job_seconds=tier.max_job_seconds, stop_timeout_seconds=tier.stop_timeout_seconds,
        status_table=aws.table_name, status_ttl_days=config.status.ttl_days,
        health_file=str(health_file(run_dir, tier)),
    ), names.WORKER_ID: f"local-{tier.name}"}
    env.setdefault(names.WORKER_POLL_WAIT_SECONDS, str(POLL_WAIT_SECONDS))
    return env


def health_file(run_dir: Path, tier: TierConfig) -> Path:
    return run_dir / f"{tier.name}.health"


def batch_definition_env(aws: LocalAws, config: EnvironmentConfig, tier: TierConfig,
                         extra_handlers: tuple[str, ...], completion: LocalCompletion) -> dict[str, str]:
    """The environment the batch stack gives the tier's job definition (registered in moto's Batch;
    the local executor runs each job with it, base_env and what AWS Batch sets)."""
    return {**tier_env(config, tier, completion),
            **names.batch_job_environment(
                tier=tier.name, handlers=tier_handlers(tier, extra_handlers), status_table=aws.table_name,
                status_ttl_days=config.status.ttl_days, max_job_seconds=tier.max_job_seconds,
                region=aws.region)}


def batch_feed_env(aws: LocalAws, *, job_queue: str, job_definition: str, job_name: str) -> dict[str, str]:
    """The batch feed function's environment, as the batch stack sets it, plus moto's endpoint; the
    function's code root (lambda/, its asset's root) is on the import path as /var/task is in Lambda."""
    env = {**base_env(aws), **names.batch_feed_environment(
        job_queue=job_queue, job_definition=job_definition, job_name=job_name)}
    env["PYTHONPATH"] = os.pathsep.join([str(LAMBDA_DIR), env["PYTHONPATH"]])
    return env
