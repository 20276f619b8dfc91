"""`python -m worker run-one`: run exactly one job from its envelope (the AWS Batch entry point).

Exit codes: 0 succeeded, 1 handler failed or timed out (worth a retry), 2 permanent failure or invalid
envelope (Batch's retry strategy should not retry 2; the failed job then goes to the batch DLQ).
Configuration errors raise ConfigError (the command line prints one line and exits 2).

Status writes name their run: the Batch job (AWS_BATCH_JOB_ID) and the message's redrive
generation (`--generation`, the job parameter the feed sets; jobfleet_contract/batch.py), so a
redriven job's writes and those of an older generation's job never overwrite each other.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Mapping

import psutil

from jobfleet_contract import environment as names
from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.environment import env_number, parse_job_timeouts
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import Run
from worker.completion import Completion
from worker.dispatch import JobContext, handler_for
from worker.isolation import ThreadExecutor
from worker.observability import Metrics
from worker.settle import DEAD_LETTERED, FAILED, SUCCEEDED, JobRecorder, Outcome, StatusWriter

log = logging.getLogger("worker.run_one")

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_PERMANENT = 0, 1, 2
_EXIT_CODES = {SUCCEEDED: EXIT_SUCCEEDED, FAILED: EXIT_FAILED, DEAD_LETTERED: EXIT_PERMANENT}
DEFAULT_MAX_SECONDS = 43200.0  # Batch enforces its own job timeout; this only bounds a hung handler
STATUS_FLUSH_SECONDS = 10.0  # the final status write gets this long before the process exits anyway


def run_one(
    envelope_text: str,
    status_store=None,
    env: Mapping[str, str] = os.environ,
    completion: Completion | None = None,
    generation: int | None = None,
) -> int:
    """Run the job; ``generation`` is the message's redrive generation (None: not known, the
    status rule then orders this job's writes by run and attempt only)."""
    tier = env.get(names.TIER) or "default"
    attempt = int(env_number(env, names.AWS_BATCH_JOB_ATTEMPT, 1, minimum=1, maximum=10, integer=True))
    job_timeouts = parse_job_timeouts(env)
    default_max = env_number(env, names.JOB_MAX_SECONDS, DEFAULT_MAX_SECONDS, minimum=1, maximum=43200)
    status = StatusWriter(status_store) if status_store is not None else None
    completion = completion or Completion(tier=tier)
    recorder = JobRecorder(
        status,
        Metrics(tier),
        env.get(names.AWS_BATCH_JOB_ID) or f"run-one-{os.getpid()}",
        completion,
        # Every outcome is final here: Batch retries only Spot reclaims, and the failure route
        # dead-letters a failed job.
        terminal=frozenset({SUCCEEDED, FAILED, DEAD_LETTERED}),
    )
    try:
        run = Run(env.get(names.AWS_BATCH_JOB_ID), generation)
        outcome = _execute(envelope_text, attempt, job_timeouts, default_max, status, run, completion)
        if outcome.error is not None:
            log.error(
                "job failed",
                extra={"jobId": outcome.job_id, "error": outcome.error_text, "outcome": outcome.kind},
            )
        recorder.record(outcome)
    finally:
        if status is not None:
            status.close(STATUS_FLUSH_SECONDS)
    return _EXIT_CODES[outcome.kind]


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
    max_seconds = job_timeouts.get(envelope.job_type, default_max)
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
