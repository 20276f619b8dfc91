"""The one settle path's shared half: every job outcome, in `run` and `run-one` alike, is recorded here as
a status write (off the job's critical path), one outcome line with its metrics and, for a terminal
outcome, the "Job State Change" event (worker.completion).

The SQS half (delete, dead-letter, visibility) belongs to `run` only and lives in the runtime's ``_settle``,
which ends by calling :meth:`JobRecorder.record`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from jobfleet_contract.environment import aws_region
from jobfleet_contract.status import Run
from worker.completion import Completion
from worker.dispatch import is_registered
from worker.errors import error_type_name
from worker.observability import UNKNOWN_TYPE, Metrics

log = logging.getLogger("worker.settle")

SUCCEEDED, FAILED, DEAD_LETTERED, DEFERRED, RELEASED, SKIPPED = (
    "succeeded",
    "failed",
    "dead-lettered",
    "deferred",
    "released",
    "skipped",
)
STATUS_BACKLOG = 1000  # pending status writes kept while the table is slow; beyond that they are dropped
# Every status call bounded: a table that connects and never answers costs at most 2 x (2 + 3) s a write.
_STATUS_CLIENT = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})


def status_dynamodb(env: Mapping[str, str]):
    """The DynamoDB resource the worker's status store writes through: bounded timeouts and retries,
    region from AWS_REGION too."""
    import boto3

    return boto3.resource("dynamodb", region_name=aws_region(env), config=_STATUS_CLIENT)


@dataclass(frozen=True)
class Outcome:
    kind: str
    job_id: str | None  # None: the body was not an envelope
    job_type: str | None
    attempt: int
    duration_ms: float | None = None
    queue_wait_ms: float | None = None
    error: BaseException | None = None
    detail: str | None = None  # appended to the error message, e.g. "retry in 4s"
    memory_bytes: float | None = None  # the job's own peak share of the worker's memory
    worker_memory_bytes: int | None = None  # the worker's peak while the job ran
    run: Run | None = None  # the execution the status write comes from (see jobfleet_contract.status.Run)
    result: Mapping[str, Any] | None = None  # where a succeeded job's result was stored (worker.results)

    @property
    def error_text(self) -> str:
        return f"{error_type_name(self.error)}: {self.error}" if self.error is not None else ""


class StatusWriter:
    """Status writes on one background thread with a bounded backlog.

    A job never waits for a write except the claim before it starts (see :meth:`claim`), and that wait
    is bounded by the caller. Each call is itself bounded by the store client's timeouts and retries, so
    a table that hangs only delays the writes queued behind it.
    """

    def __init__(self, store) -> None:
        self._store = store
        self._queue: queue.Queue = queue.Queue(STATUS_BACKLOG)
        self.responsive = True  # False after a failed or slow call, until one succeeds
        self._thread = threading.Thread(target=self._drain, name="status-writer", daemon=True)
        self._thread.start()

    def submit(self, method: str, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            self._queue.put_nowait((future, method, args, kwargs))
        except queue.Full:
            log.warning("status backlog full; write dropped", extra={"method": method})
            future.set_result(None)
        return future

    def claim(self, job_id: str, job_type: str, attempt: int, run: Run | None = None) -> Future:
        """Mark the job running; the future's result is None when claimed, else the status that refused it
        (e.g. "succeeded": a duplicate delivery of a finished job)."""
        return self.submit("_claim", job_id, job_type, attempt, run)

    def _claim(self, job_id: str, job_type: str, attempt: int, run: Run | None) -> str | None:
        if self._store.mark_running(job_id, job_type, attempt, run=run):
            return None
        return (self._store.get(job_id) or {}).get("status")

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, method, args, kwargs = item
            target = self if method == "_claim" else self._store
            try:
                future.set_result(getattr(target, method)(*args, **kwargs))
                self.responsive = True
            except Exception as exc:  # status is advisory: an outage must not fail or block jobs
                self.responsive = False
                log.warning("status update failed", extra={"method": method, "error": str(exc)})
                future.set_result(None)

    def close(self, timeout: float) -> None:
        """Let queued writes finish for up to ``timeout`` seconds; what is left is dropped."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class JobRecorder:
    """Records an outcome: the status transition it implies, and the outcome line with its metrics."""

    _STATUS_METHOD = {
        SUCCEEDED: "mark_succeeded",
        FAILED: "mark_failed",
        DEAD_LETTERED: "mark_dead_lettered",
        RELEASED: "mark_released",
    }

    def __init__(
        self,
        status: StatusWriter | None,
        metrics: Metrics,
        worker_id: str,
        completion: Completion | None = None,
        terminal: frozenset[str] = frozenset({SUCCEEDED, DEAD_LETTERED}),
        failed_status: str = "mark_failed",
    ) -> None:
        self.status = status
        self.metrics = metrics
        self.worker_id = worker_id
        self.completion = completion
        self.terminal = terminal  # the outcome kinds that end the job here, each announced as an event
        # The write a FAILED outcome makes: `failed`, or run-one's `queued` when Batch retries the job.
        self._status_methods = {**self._STATUS_METHOD, FAILED: failed_status}

    def record(self, outcome: Outcome) -> None:
        method = self._status_methods.get(outcome.kind)
        if self.status is not None and method and outcome.job_id and outcome.job_type:
            extra: dict[str, Any] = {}
            if outcome.kind in (FAILED, DEAD_LETTERED):
                extra["error"] = outcome.error_text
            if outcome.kind == SUCCEEDED:
                extra["result"] = outcome.result
            self.status.submit(method, outcome.job_id, outcome.job_type, outcome.attempt, run=outcome.run,
                               **extra)
        if (self.completion is not None and outcome.kind in self.terminal
                and outcome.job_id and outcome.job_type):
            self.completion.finished(
                outcome.job_id, outcome.job_type, outcome.kind, outcome.attempt,
                error=outcome.error_text or None, result=outcome.result,
            )
        job_type = outcome.job_type if outcome.job_type and is_registered(outcome.job_type) else UNKNOWN_TYPE
        message = str(outcome.error) if outcome.error is not None else None
        if outcome.detail:
            message = f"{message} ({outcome.detail})" if message else outcome.detail
        self.metrics.job_outcome(
            job_id=outcome.job_id,
            job_type=job_type,
            attempt=outcome.attempt,
            outcome=outcome.kind,
            duration_ms=outcome.duration_ms,
            queue_wait_ms=outcome.queue_wait_ms,
            worker_id=self.worker_id,
            error_type=error_type_name(outcome.error) if outcome.error is not None else None,
            error_message=message,
            memory_bytes=outcome.memory_bytes,
            worker_memory_bytes=outcome.worker_memory_bytes,
        )
