"""Where a handler runs: a thread of the worker (default) or a recycled child process.

Both enforce the job's deadline the same way from the caller's side: ``execute`` returns or raises by
the deadline. A thread cannot be killed in Python, so a hung thread is abandoned (and counted); a child
process is killed. Use process isolation for handlers that can hang, leak or spike memory.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

import psutil

from jobfleet_contract.envelope import Envelope
from jobfleet_contract.errors import PermanentError
from worker.dispatch import JobContext, handler_for, invoke, load_handler_modules
from worker.errors import JobTimeout, RemoteJobError, RemotePermanentError, error_type_name
from worker.results import encode_result

log = logging.getLogger("worker.isolation")


class ThreadExecutor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned: list[threading.Thread] = []

    def abandoned_count(self) -> int:
        """Timed-out handler threads still running; the runtime stops when they use up its capacity."""
        with self._lock:
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            return len(self._abandoned)

    def execute(self, envelope: Envelope, ctx: JobContext) -> str | None:
        """Run the handler by the deadline; returns its result as JSON text (None: no result)."""
        handler = handler_for(envelope.job_type)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = encode_result(ctx.result_of(invoke(handler, envelope.payload, ctx)))
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"handler-{envelope.job_id}", daemon=True)
        thread.start()
        thread.join(max(0.0, ctx.deadline - time.time()))
        if thread.is_alive():
            with self._lock:
                self._abandoned.append(thread)
            raise JobTimeout(f"{envelope.job_type} exceeded its maximum duration; handler thread abandoned")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def close(self) -> None:
        """Threads are daemons: nothing to release."""


def _child_main(conn, handler_modules: tuple[str, ...]) -> None:
    load_handler_modules(handler_modules)
    logger = logging.getLogger("worker.job")
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        job_id, job_type, attempt, deadline, payload = request
        ctx = JobContext(job_id, job_type, attempt, deadline, logger)
        try:
            result = encode_result(ctx.result_of(invoke(handler_for(job_type), payload, ctx)))
            conn.send(("ok", result, None))
        except PermanentError as exc:
            conn.send(("permanent", error_type_name(exc), str(exc)))
        except Exception as exc:
            conn.send(("error", error_type_name(exc), str(exc)))


class _Child:
    def __init__(self, context, handler_modules: tuple[str, ...]) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_child_main, args=(child_conn, handler_modules), daemon=True)
        self.process.start()
        child_conn.close()
        self.jobs_run = 0

    def rss(self) -> int:
        try:
            return psutil.Process(self.process.pid).memory_info().rss
        except psutil.Error:
            return 0

    def stop(self) -> None:
        self.conn.close()
        self.process.kill()
        self.process.join(5)


class ProcessExecutor:
    """A pool of child processes, one per running job at most; each is replaced after
    ``recycle_after_jobs`` jobs or once its RSS passes ``recycle_rss_bytes`` (leaks and fragmentation
    die with the process), and killed if its job passes the deadline."""

    def __init__(
        self, handler_modules: tuple[str, ...], recycle_after_jobs: int | None, recycle_rss_bytes: int | None
    ) -> None:
        # spawn, not fork: forking a process with boto3 and threads can copy held locks into the child.
        self._context = multiprocessing.get_context("spawn")
        self._modules = handler_modules
        self._recycle_after_jobs = recycle_after_jobs
        self._recycle_rss_bytes = recycle_rss_bytes
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self.children_started = 0

    def abandoned_count(self) -> int:
        return 0  # timed-out children are killed, never abandoned

    def _checkout(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    return child
                child.stop()
            self.children_started += 1
        return _Child(self._context, self._modules)

    def _checkin(self, child: _Child) -> None:
        child.jobs_run += 1
        worn_out = self._recycle_after_jobs is not None and child.jobs_run >= self._recycle_after_jobs
        bloated = self._recycle_rss_bytes is not None and child.rss() > self._recycle_rss_bytes
        if worn_out or bloated:
            log.info(
                "recycling handler process",
                extra={"pid": child.process.pid, "jobsRun": child.jobs_run, "rssBytes": child.rss()},
            )
            child.stop()
            return
        with self._lock:
            self._idle.append(child)

    def execute(self, envelope: Envelope, ctx: JobContext) -> str | None:
        handler_for(envelope.job_type)  # unknown types fail here, without a round trip
        child = self._checkout()
        try:
            child.conn.send((ctx.job_id, ctx.job_type, ctx.attempt, ctx.deadline, envelope.payload))
            if not child.conn.poll(max(0.0, ctx.deadline - time.time())):
                child.stop()
                raise JobTimeout(f"{envelope.job_type} exceeded its maximum duration; handler process killed")
            kind, detail, message = child.conn.recv()
        except (EOFError, OSError) as exc:
            # The child died mid-job (OOM kill, segfault): a transient failure, retried on a fresh child.
            child.stop()
            raise RemoteJobError(
                "HandlerProcessDied", f"handler process exited with {child.process.exitcode}: {exc}"
            ) from None
        self._checkin(child)
        if kind == "permanent":
            raise RemotePermanentError(detail, message)
        if kind == "error":
            raise RemoteJobError(detail, message)
        return detail  # the result's JSON text, or None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()


class TypeRoutedExecutor:
    """Per-job-type isolation (JOB_ISOLATION): each type runs where it is configured to, the rest in the
    default executor."""

    def __init__(self, default: Any, per_type: dict[str, str], executors: dict[str, Any]) -> None:
        self._default = default
        self._per_type = per_type
        self._executors = executors

    def _for(self, job_type: str) -> Any:
        mode = self._per_type.get(job_type)
        return self._executors[mode] if mode else self._default

    def execute(self, envelope: Envelope, ctx: JobContext) -> str | None:
        return self._for(envelope.job_type).execute(envelope, ctx)

    def abandoned_count(self) -> int:
        return sum(executor.abandoned_count() for executor in self._executors.values())

    def close(self) -> None:
        for executor in self._executors.values():
            executor.close()


def make_executor(
    isolation: str,
    handler_modules: tuple[str, ...],
    recycle_after_jobs: int | None,
    recycle_rss_bytes: int | None,
    per_type: dict[str, str] | None = None,
) -> Any:
    def build(mode: str) -> Any:
        if mode == "process":
            return ProcessExecutor(handler_modules, recycle_after_jobs, recycle_rss_bytes)
        return ThreadExecutor()

    modes = {isolation, *(per_type or {}).values()}
    if len(modes) == 1:
        return build(isolation)
    executors = {mode: build(mode) for mode in modes}
    return TypeRoutedExecutor(executors[isolation], dict(per_type or {}), executors)
