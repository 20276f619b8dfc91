"""`python -m worker run-one`: run exactly one job from its envelope (the AWS Batch entry point).

Exit codes: 0 succeeded; 3 the handler failed or timed out before the last allowed attempt
(`JOB_MAX_ATTEMPTS`, the tier's max_receive_count): the job definition's retry strategy retries it
and the status says `queued` with the error; 1 the same on the last allowed attempt (status
`failed`); 2 permanent failure or invalid envelope. On 1 and 2 Batch ends the job FAILED and the
failure route sends it to the batch DLQ. Configuration errors raise ConfigError (the command line
prints one line and exits 2).

Batch retries at once, so a retry attempt (AWS_BATCH_JOB_ATTEMPT > 1) first waits the worker's
backoff for the attempts so far (policy.backoff_seconds), at most RETRY_WAIT_MAX_SECONDS and a tenth
of JOB_MAX_SECONDS, so a dependency outage is not hammered. run-one cannot tell why the previous
attempt ended, so a retry after a Spot reclaim waits too.

Status writes name their run: the Batch job (AWS_BATCH_JOB_ID) and the message's redrive
generation (`--generation`, the job parameter the feed sets; jobfleet_contract/batch.py), so a
redriven job's writes and those of an older generation's job never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import resource
import time
from collections.abc import Callable, Mapping

import psutil

from jobfleet_contract import environment as names
from jobfleet_contract.batch import EXIT_PERMANENT, EXIT_RETRY
from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.environment import env_number, parse_job_max_attempts, parse_job_timeouts
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import Run
from worker.completion import Completion
from worker.dispatch import JobContext, handler_for
from worker.isolation import ThreadExecutor
from worker.observability import Metrics
from worker.policy import backoff_seconds
from worker.settle import DEAD_LETTERED, FAILED, SUCCEEDED, JobRecorder, Outcome, StatusWriter

log = logging.getLogger("worker.run_one")

EXIT_SUCCEEDED, EXIT_FAILED = 0, 1
DEFAULT_MAX_SECONDS = 43200.0  # Batch enforces its own job timeout; this only bounds a hung handler
STATUS_FLUSH_SECONDS = 10.0  # the final status write gets this long before the process exits anyway
# The worker's backoff (the same variables and defaults as `run`), capped lower: the wait is spent
# in a running container, inside the attempt's timeout.
DEFAULT_BACKOFF_BASE_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS = 2.0, 900.0
RETRY_WAIT_MAX_SECONDS = 300
RETRY_WAIT_SHARE_OF_JOB = 0.1


def run_one(
    envelope_text: str,
    status_store=None,
    env: Mapping[str, str] = os.environ,
    completion: Completion | None = None,
    generation: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> int:
    """Run the job; ``generation`` is the message's redrive generation (None: not known, the
    status rule then orders this job's writes by run and attempt only)."""
    tier = env.get(names.TIER) or "default"
    attempt = int(env_number(env, names.AWS_BATCH_JOB_ATTEMPT, 1, minimum=1, maximum=10, integer=True))
    last_attempt = attempt >= parse_job_max_attempts(env)
    job_timeouts = parse_job_timeouts(env)
    default_max = env_number(env, names.JOB_MAX_SECONDS, DEFAULT_MAX_SECONDS, minimum=1, maximum=43200)
    backoff_base = env_number(env, names.WORKER_BACKOFF_BASE_SECONDS, DEFAULT_BACKOFF_BASE_SECONDS,
                              minimum=0, maximum=43200)
    backoff_max = env_number(env, names.WORKER_BACKOFF_MAX_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS,
                             minimum=0, maximum=43200)
    status = StatusWriter(status_store) if status_store is not None else None
    completion = completion or Completion(tier=tier)
    recorder = JobRecorder(
        status,
        Metrics(tier),
        env.get(names.AWS_BATCH_JOB_ID) or f"run-one-{os.getpid()}",
        completion,
        # A failure before the last allowed attempt is retried by Batch: the job is queued again,
        # not finished. Every other outcome is final (the failure route dead-letters a failed job).
        terminal=frozenset({SUCCEEDED, DEAD_LETTERED} | ({FAILED} if last_attempt else set())),
        failed_status="mark_failed" if last_attempt else "mark_released",
    )
    try:
        if attempt > 1:
            cap = min(backoff_max, RETRY_WAIT_MAX_SECONDS, default_max * RETRY_WAIT_SHARE_OF_JOB)
            wait = backoff_seconds(attempt - 1, backoff_base, cap, jitter())
            log.info("retry attempt: backing off before running",
                     extra={"attempt": attempt, "waitSeconds": wait})
            sleep(wait)
            default_max = max(1.0, default_max - wait)  # Batch's attempt timeout includes the wait
        run = Run(env.get(names.AWS_BATCH_JOB_ID), generation)
        outcome = _execute(envelope_text, attempt, job_timeouts, default_max, status, run, completion)
        if outcome.kind == FAILED and not last_attempt:
            outcome = dataclasses.replace(outcome, detail="Batch retries it")
        if outcome.error is not None:
            log.error(
                "job failed",
                extra={"jobId": outcome.job_id, "error": outcome.error_text, "outcome": outcome.kind},
            )
        recorder.record(outcome)
    finally:
        if status is not None:
            status.close(STATUS_FLUSH_SECONDS)
    if outcome.kind == FAILED:
        return EXIT_FAILED if last_attempt else EXIT_RETRY
    return EXIT_PERMANENT if outcome.kind == DEAD_LETTERED else EXIT_SUCCEEDED


def _execute(
    text: str,
    attempt: int,
    job_timeouts: dict[str, float],
    default_max: float,
    status: StatusWriter | None,
    run: Run,
    completion: Completion,
) -> Outcome:
    try:
        envelope = parse_envelope(text)
    except PermanentError as exc:
        return Outcome(DEAD_LETTERED, None, None, attempt, error=exc)
    started = time.monotonic()
    rss_before = psutil.Process().memory_info().rss
    max_seconds = min(job_timeouts.get(envelope.job_type, default_max), default_max)
    ctx = JobContext(
        envelope.job_id,
        envelope.job_type,
        attempt,
        time.time() + max_seconds,
        logging.getLogger(f"worker.job.{envelope.job_type}"),
    )
    error: BaseException | None = None
    result = None
    try:
        handler_for(envelope.job_type)
        if status is not None:
            status.claim(envelope.job_id, envelope.job_type, attempt, run)
        # Storing the result is part of the job: a result that cannot be stored fails it.
        result = completion.store_result(envelope.job_id, ThreadExecutor().execute(envelope, ctx))
    except BaseException as exc:  # any handler failure becomes an exit code, never a traceback exit
        error = exc
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    kind = SUCCEEDED if error is None else DEAD_LETTERED if isinstance(error, PermanentError) else FAILED
    return Outcome(
        kind,
        envelope.job_id,
        envelope.job_type,
        attempt,
        duration_ms=(time.monotonic() - started) * 1000,
        error=error,
        memory_bytes=max(0, peak - rss_before),
        worker_memory_bytes=peak,
        run=run,
        result=result,
    )
