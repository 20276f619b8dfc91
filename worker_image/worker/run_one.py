"""`python -m worker run-one`: run exactly one job from its envelope (the AWS Batch entry point).

Exit codes: 0 succeeded, 1 handler failed or timed out (worth a retry), 2 permanent failure or invalid
envelope (Batch's retry strategy should not retry 2; the failed job then goes to the batch DLQ).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

from jobfleet_contract import environment as names
from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.environment import ConfigError, env_number, parse_job_timeouts
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import Run
from worker.dispatch import JobContext, handler_for, is_registered
from worker.errors import error_type_name
from worker.isolation import ThreadExecutor
from worker.observability import UNKNOWN_TYPE, Metrics

log = logging.getLogger("worker.run_one")

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_PERMANENT = 0, 1, 2
DEFAULT_MAX_SECONDS = 43200.0  # Batch enforces its own job timeout; this only bounds a hung handler


def run_one(envelope_text: str, status_store=None, env: Mapping[str, str] = os.environ) -> int:
    tier = env.get(names.TIER) or "default"
    metrics = Metrics(tier)
    worker_id = env.get(names.AWS_BATCH_JOB_ID) or f"run-one-{os.getpid()}"
    attempt = int(env.get(names.AWS_BATCH_JOB_ATTEMPT) or 1)
    try:
        envelope = parse_envelope(envelope_text)
    except PermanentError as exc:
        log.error("invalid envelope", extra={"error": str(exc)})
        metrics.job_outcome(
            job_id=None,
            job_type=UNKNOWN_TYPE,
            attempt=attempt,
            outcome="dead-lettered",
            duration_ms=None,
            queue_wait_ms=None,
            worker_id=worker_id,
            error_type=error_type_name(exc),
            error_message=str(exc),
        )
        return EXIT_PERMANENT
    try:
        max_seconds = parse_job_timeouts(env).get(
            envelope.job_type,
            env_number(env, names.JOB_MAX_SECONDS, DEFAULT_MAX_SECONDS, minimum=1, maximum=43200),
        )
    except ConfigError as exc:
        log.error("invalid configuration", extra={"error": str(exc)})
        return EXIT_PERMANENT
    started = time.monotonic()
    ctx = JobContext(
        envelope.job_id,
        envelope.job_type,
        attempt,
        time.time() + max_seconds,
        logging.getLogger(f"worker.job.{envelope.job_type}"),
    )
    # One Batch job is one run (its retries are attempts); the redrive generation is not passed to
    # Batch, so the record orders this run's writes by run and attempt only.
    run = Run(env.get(names.AWS_BATCH_JOB_ID))
    _record(status_store, "mark_running", envelope.job_id, envelope.job_type, attempt, run=run)
    try:
        handler_for(envelope.job_type)
        ThreadExecutor().execute(envelope, ctx)
    except BaseException as exc:  # any handler failure becomes an exit code, never a traceback exit
        permanent = isinstance(exc, PermanentError)
        error = f"{error_type_name(exc)}: {exc}"
        log.error("job failed", extra={"jobId": envelope.job_id, "error": error, "permanent": permanent})
        _record(status_store, "mark_failed", envelope.job_id, envelope.job_type, attempt, error, run=run)
        metrics.job_outcome(
            job_id=envelope.job_id,
            job_type=envelope.job_type if is_registered(envelope.job_type) else UNKNOWN_TYPE,
            attempt=attempt,
            outcome="dead-lettered" if permanent else "failed",
            duration_ms=(time.monotonic() - started) * 1000,
            queue_wait_ms=None,
            worker_id=worker_id,
            error_type=error_type_name(exc),
            error_message=str(exc),
        )
        return EXIT_PERMANENT if permanent else EXIT_FAILED
    _record(status_store, "mark_succeeded", envelope.job_id, envelope.job_type, attempt, run=run)
    metrics.job_outcome(
        job_id=envelope.job_id,
        job_type=envelope.job_type,
        attempt=attempt,
        outcome="succeeded",
        duration_ms=(time.monotonic() - started) * 1000,
        queue_wait_ms=None,
        worker_id=worker_id,
    )
    return EXIT_SUCCEEDED


def _record(store, method: str, *args, **kwargs) -> None:
    if store is None:
        return
    try:
        getattr(store, method)(*args, **kwargs)
    except Exception as exc:  # status is advisory; the exit code is what Batch acts on
        log.warning("status update failed", extra={"method": method, "error": str(exc)})
