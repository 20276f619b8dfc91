"""The poll loop: receive only what there is room for, run each job on its own slot, keep running
messages invisible, delete in batches, and drain on stop.

Threads: the main thread polls SQS; one thread per running job; one housekeeping thread that flushes
deletes, sends visibility heartbeats, samples memory and holds ECS task protection.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from jobfleet_contract.attributes import (
    DEFERRALS,
    PRIOR_ATTEMPTS,
    REDRIVE_COUNT,
    SQS_MAX_MESSAGE_ATTRIBUTES,
    dead_letter_attributes,
    number_value,
)
from jobfleet_contract.envelope import Envelope, parse_envelope
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import Run
from jobfleet_contract.timestamps import iso_now
from worker.config import WorkerConfig
from worker.dispatch import JobContext, handler_for, is_registered
from worker.errors import error_type_name
from worker.isolation import make_executor
from worker.lifecycle import TaskProtection, touch_health_file
from worker.memory import MemoryReader
from worker.observability import UNKNOWN_TYPE, Metrics
from worker.policy import (
    CircuitBreaker,
    DeadLetter,
    FootprintEstimator,
    attempt_number,
    decide_failure,
    deferral_delay,
    heartbeat_extension,
    memory_paused,
    receive_count,
)
from worker.transport import Message, SqsTransport

log = logging.getLogger("worker.runtime")

SQS_ERRORS = (BotoCoreError, ClientError)
HOUSEKEEPING_INTERVAL = 0.1
IDLE_RECHECK_SECONDS = 0.5  # how often a full or memory-paused worker re-evaluates (and touches health)
MAX_RECEIVE_BACKOFF = 30.0
# Paused on memory with nothing running means the memory is not the jobs' (a leak, fragmentation):
# waiting cannot fix it, a fresh task can.
MEMORY_STUCK_SECONDS = 60.0
DELETE_RETRIES = 3


@dataclass(eq=False)
class _Held:
    """A message this worker holds: running, or finished and waiting for its batched delete."""

    message: Message
    received_at: float  # monotonic
    visible_at: float  # monotonic time its current visibility lapses
    queue_wait_ms: float | None
    deadline: float = math.inf  # monotonic; set once the job type (and so its timeout) is known
    running: bool = True
    released: bool = False  # handed back to SQS by the drain; a late completion must not touch it
    delete_attempts: int = 0


def _run(held: _Held) -> Run:
    """The run a status write comes from: this message, of the redrive generation it carries."""
    return Run(held.message.message_id, held.message.int_attribute(REDRIVE_COUNT))


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        transport: SqsTransport,
        *,
        memory_reader: MemoryReader,
        executor=None,
        status_store=None,
        protection: TaskProtection | None = None,
        metrics: Metrics | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.transport = transport
        self._read_memory = memory_reader
        self._executor = executor or make_executor(
            config.isolation, config.handler_modules, config.recycle_after_jobs, config.recycle_rss_bytes
        )
        self._status = status_store
        self._protection = protection
        self._metrics = metrics or Metrics(config.tier)
        self._jitter = jitter
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}  # by receipt handle
        self._running = 0
        self._pending_deletes: list[_Held] = []
        self._breaker = CircuitBreaker(config.breaker_failure_threshold, config.breaker_cooldown_seconds)
        self._footprint = FootprintEstimator()
        self._paused = False
        self._stop = threading.Event()
        self._stop_requested_at: float | None = None
        self._wake = threading.Event()
        self._housekeeping_done = threading.Event()
        self._sqs_quiet_until = 0.0
        self.visibility_timeout = 0
        self.exit_code = 0

    # --- public ---------------------------------------------------------------------------------------

    @property
    def memory_paused(self) -> bool:
        return self._paused

    @property
    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def request_stop(self, reason: str = "requested") -> None:
        """Begin the drain: stop receiving now, finish in-flight work within the stop timeout."""
        if self._stop.is_set():
            return
        self._stop_requested_at = time.monotonic()
        log.info("stop requested; draining", extra={"reason": reason})
        self._stop.set()
        self._wake.set()

    def run(self) -> int:
        if not self._load_visibility_timeout():
            return self.exit_code
        if self._protection is None:
            longest = max(
                [self.config.timeout_for("", self.visibility_timeout), *self.config.job_timeouts.values()]
            )
            self._protection = TaskProtection.from_env(longest)
        housekeeping = threading.Thread(target=self._housekeeping_loop, name="housekeeping", daemon=True)
        housekeeping.start()
        log.info(
            "worker started",
            extra={
                "queueUrl": self.config.queue_url,
                "concurrency": self.config.concurrency,
                "visibilityTimeout": self.visibility_timeout,
                "tier": self.config.tier,
                "isolation": self.config.isolation,
            },
        )
        self._poll_loop()
        self._drain(housekeeping)
        return self.exit_code

    # --- receiving --------------------------------------------------------------------------------------

    def _load_visibility_timeout(self) -> bool:
        delay = 1.0
        while not self._stop.is_set():
            touch_health_file(self.config.health_file)
            try:
                self.visibility_timeout = self.transport.visibility_timeout()
                return True
            except SQS_ERRORS as exc:
                log.warning(
                    "cannot read queue attributes; retrying", extra={"error": str(exc), "delay": delay}
                )
                self._stop.wait(delay)
                delay = min(MAX_RECEIVE_BACKOFF, delay * 2)
        return False

    def _poll_loop(self) -> None:
        failures = 0
        paused_idle_since: float | None = None
        while not self._stop.is_set():
            touch_health_file(self.config.health_file)
            with self._lock:
                paused_idle = self._paused and self._running == 0
            paused_idle_since = (paused_idle_since or time.monotonic()) if paused_idle else None
            if paused_idle_since is not None and time.monotonic() - paused_idle_since > MEMORY_STUCK_SECONDS:
                log.error(
                    "memory above the low-water mark with no job running; exiting so the orchestrator "
                    "replaces this task"
                )
                self.exit_code = 1
                self.request_stop("memory-stuck")
                break
            if self._executor.abandoned_count() >= self.config.concurrency:
                log.error(
                    "every slot's worth of handler threads is hung past its deadline; exiting so the "
                    "orchestrator replaces this task (use WORKER_ISOLATION=process for such handlers)"
                )
                self.exit_code = 1
                self.request_stop("hung-handlers")
                break
            self._wake.clear()
            wanted = self._receive_budget()
            if wanted == 0:
                self._wake.wait(IDLE_RECHECK_SECONDS)
                continue
            try:
                messages = self.transport.receive(wanted, self.config.poll_wait_seconds)
            except SQS_ERRORS as exc:
                failures += 1
                delay = min(MAX_RECEIVE_BACKOFF, 2.0 ** (failures - 1)) * (0.5 + self._jitter() / 2)
                log.warning(
                    "receive failed; backing off", extra={"error": str(exc), "delay": round(delay, 2)}
                )
                self._stop.wait(delay)
                continue
            failures = 0
            for message in messages:
                if self._stop.is_set():
                    # Received while the stop arrived: never started, so hand it straight back.
                    self._set_visibility_quietly(message, 0)
                else:
                    self._start(message)

    def _receive_budget(self) -> int:
        reading = self._read_memory()
        now = time.monotonic()
        with self._lock:
            running = self._running
            self._footprint.observe(reading.used_bytes, running, now)
            memory_budget = self._footprint.admissible(
                running, reading.limit_bytes, self.config.memory_high_water
            )
        paused = memory_paused(
            reading.fraction, self._paused, self.config.memory_high_water, self.config.memory_low_water
        )
        if paused != self._paused:
            log.warning(
                "memory high water: receiving paused" if paused else "memory below low water: resuming",
                extra={"usedBytes": reading.used_bytes, "limitBytes": reading.limit_bytes},
            )
            if paused:
                self._metrics.memory_pause(reading.fraction)
            self._paused = paused
        return receive_count(self.config.concurrency - running, memory_budget, paused, self._stop.is_set())

    def _start(self, message: Message) -> None:
        now = time.monotonic()
        wait = time.time() * 1000 - message.sent_timestamp_ms if message.sent_timestamp_ms else None
        held = _Held(message, now, now + self.visibility_timeout, wait)
        with self._lock:
            self._held[message.receipt_handle] = held
            self._running += 1
        threading.Thread(
            target=self._process, args=(held,), name=f"job-{message.message_id}", daemon=True
        ).start()

    # --- one job ------------------------------------------------------------------------------------------

    def _process(self, held: _Held) -> None:
        message = held.message
        attempt = attempt_number(message.receive_count, message.int_attribute(PRIOR_ATTEMPTS))
        try:
            try:
                envelope = parse_envelope(message.body)
            except PermanentError as exc:
                self._dead_letter(held, exc, attempt, None, UNKNOWN_TYPE, None)
                return
            try:
                handler_for(envelope.job_type)
            except PermanentError as exc:
                self._dead_letter(held, exc, attempt, envelope, envelope.job_type, None)
                return
            with self._lock:
                allowed = self._breaker.allow(envelope.job_type, time.monotonic())
            if not allowed:
                self._defer(held, envelope, attempt)
                return
            self._run_handler(held, envelope, attempt)
        finally:
            with self._lock:
                self._running -= 1
                held.running = False
            self._wake.set()

    def _run_handler(self, held: _Held, envelope: Envelope, attempt: int) -> None:
        timeout = self.config.timeout_for(envelope.job_type, self.visibility_timeout)
        held.deadline = held.received_at + timeout
        ctx = JobContext(
            envelope.job_id,
            envelope.job_type,
            attempt,
            time.time() + (held.deadline - time.monotonic()),
            logging.getLogger(f"worker.job.{envelope.job_type}"),
        )
        self._record_status("mark_running", envelope.job_id, envelope.job_type, attempt, run=_run(held))
        started = time.monotonic()
        try:
            self._executor.execute(envelope, ctx)
        except BaseException as exc:  # handler code may raise anything; every failure is a job outcome
            duration_ms = (time.monotonic() - started) * 1000
            self._failed(held, envelope, attempt, exc, duration_ms)
            return
        duration_ms = (time.monotonic() - started) * 1000
        with self._lock:
            self._breaker.record_success(envelope.job_type)
            self._footprint.job_completed()
            if held.released:
                return
            self._pending_deletes.append(held)
        self._record_status("mark_succeeded", envelope.job_id, envelope.job_type, attempt, run=_run(held))
        self._metrics.job_outcome(
            job_id=envelope.job_id,
            job_type=envelope.job_type,
            attempt=attempt,
            outcome="succeeded",
            duration_ms=duration_ms,
            queue_wait_ms=held.queue_wait_ms,
            worker_id=self.config.worker_id,
        )

    def _failed(
        self, held: _Held, envelope: Envelope, attempt: int, exc: BaseException, duration_ms: float
    ) -> None:
        permanent = isinstance(exc, PermanentError)
        if not permanent:
            with self._lock:
                opened = self._breaker.record_failure(envelope.job_type, time.monotonic())
            if opened:
                log.warning("circuit breaker opened", extra={"jobType": envelope.job_type})
                self._metrics.breaker_open(envelope.job_type)
        if held.released:
            return
        decision = decide_failure(
            permanent,
            attempt,
            self.config.max_receive_count,
            self.config.backoff_base_seconds,
            self.config.backoff_max_seconds,
            self._jitter(),
        )
        if isinstance(decision, DeadLetter):
            self._dead_letter(held, exc, attempt, envelope, envelope.job_type, duration_ms)
            return
        # The retry waits out its backoff invisible in the queue, not in this process.
        self._set_visibility_quietly(held.message, decision.delay_seconds)
        self._forget(held)
        self._record_status(
            "mark_failed", envelope.job_id, envelope.job_type, attempt, f"{error_type_name(exc)}: {exc}",
            run=_run(held),
        )
        self._metrics.job_outcome(
            job_id=envelope.job_id,
            job_type=envelope.job_type,
            attempt=attempt,
            outcome="failed",
            duration_ms=duration_ms,
            queue_wait_ms=held.queue_wait_ms,
            worker_id=self.config.worker_id,
            error_type=error_type_name(exc),
            error_message=f"{exc} (retry in {decision.delay_seconds}s)",
        )

    def _dead_letter(
        self,
        held: _Held,
        exc: BaseException,
        attempt: int,
        envelope: Envelope | None,
        job_type: str,
        duration_ms: float | None,
    ) -> None:
        message = held.message
        attributes, dropped = dead_letter_attributes(
            message.attributes,
            error_type=error_type_name(exc),
            error_message=str(exc),
            attempt=attempt,
            worker_id=self.config.worker_id,
            failed_at=iso_now(),
            job_type=job_type,
        )
        if dropped:
            log.warning(
                "SQS allows 10 message attributes; dropped from the DLQ copy", extra={"dropped": dropped}
            )
        try:
            self.transport.send_to_dlq(message, attributes)
        except SQS_ERRORS as exc_send:
            # Not deleted: the message reappears after its visibility timeout and this is decided again.
            log.error(
                "dead-lettering failed; message stays in the queue",
                extra={"messageId": message.message_id, "error": str(exc_send)},
            )
            self._forget(held)
            return
        with self._lock:
            self._pending_deletes.append(held)
        job_id = envelope.job_id if envelope else None
        metric_type = job_type if is_registered(job_type) else UNKNOWN_TYPE
        if envelope:
            self._record_status(
                "mark_dead_lettered",
                envelope.job_id,
                envelope.job_type,
                attempt,
                f"{error_type_name(exc)}: {exc}",
                run=_run(held),
            )
        self._metrics.job_outcome(
            job_id=job_id,
            job_type=metric_type,
            attempt=attempt,
            outcome="dead-lettered",
            duration_ms=duration_ms,
            queue_wait_ms=held.queue_wait_ms,
            worker_id=self.config.worker_id,
            error_type=error_type_name(exc),
            error_message=str(exc),
        )

    def _defer(self, held: _Held, envelope: Envelope, attempt: int) -> None:
        """Breaker open: put the job back for later without spending an attempt.

        Re-sent as a new message with DelaySeconds (its receive count restarts) carrying the attempts
        already spent, so a deferral never pushes a healthy job toward the DLQ.
        """
        message = held.message
        with self._lock:
            delay = deferral_delay(self._breaker.retry_after(envelope.job_type, time.monotonic()))
        attributes = {
            **message.attributes,
            PRIOR_ATTEMPTS: number_value(attempt - 1),
            DEFERRALS: number_value(message.int_attribute(DEFERRALS) + 1),
        }
        try:
            if len(attributes) > SQS_MAX_MESSAGE_ATTRIBUTES:
                raise ValueError("no room for deferral attributes")
            self.transport.requeue_with_delay(message, delay, attributes)
        except (*SQS_ERRORS, ValueError) as exc:
            # Fallback: hide the original instead; costs one receive count, never loses the job.
            log.warning("deferral re-send failed; delaying in place", extra={"error": str(exc)})
            self._set_visibility_quietly(message, delay)
            self._forget(held)
        else:
            with self._lock:
                self._pending_deletes.append(held)
        self._metrics.job_outcome(
            job_id=envelope.job_id,
            job_type=envelope.job_type,
            attempt=attempt,
            outcome="deferred",
            duration_ms=None,
            queue_wait_ms=held.queue_wait_ms,
            worker_id=self.config.worker_id,
            error_type="BreakerOpen",
            error_message=f"deferred {delay}s",
        )

    # --- helpers -----------------------------------------------------------------------------------------

    def _forget(self, held: _Held) -> None:
        with self._lock:
            self._held.pop(held.message.receipt_handle, None)

    def _set_visibility_quietly(self, message: Message, seconds: int) -> None:
        try:
            self.transport.change_visibility(message, seconds)
        except SQS_ERRORS as exc:
            log.warning(
                "visibility change failed; the message reappears when its visibility lapses",
                extra={"messageId": message.message_id, "error": str(exc)},
            )

    def _record_status(self, method: str, *args, **kwargs) -> None:
        if self._status is None:
            return
        try:
            getattr(self._status, method)(*args, **kwargs)
        except Exception as exc:  # status is advisory: a DynamoDB outage must not fail or block jobs
            log.warning("status update failed", extra={"method": method, "error": str(exc)})

    # --- housekeeping thread -----------------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        while not self._housekeeping_done.wait(HOUSEKEEPING_INTERVAL):
            self._housekeeping_tick()

    def _housekeeping_tick(self) -> None:
        now = time.monotonic()
        reading = self._read_memory()
        with self._lock:
            self._footprint.observe(reading.used_bytes, self._running, now)
            busy = bool(self._held)
        self._protection.update(busy, now)
        if now < self._sqs_quiet_until:
            return
        try:
            self._flush_deletes()
            self._send_heartbeats()
        except SQS_ERRORS as exc:
            log.warning("SQS housekeeping failed; retrying shortly", extra={"error": str(exc)})
            self._sqs_quiet_until = now + 1.0

    def _flush_deletes(self) -> None:
        with self._lock:
            batch, self._pending_deletes = self._pending_deletes, []
        if not batch:
            return
        try:
            retry = {m.receipt_handle for m in self.transport.delete_batch([h.message for h in batch])}
        except SQS_ERRORS:
            with self._lock:
                self._pending_deletes[:0] = batch
            raise
        with self._lock:
            for held in batch:
                if held.message.receipt_handle in retry and held.delete_attempts < DELETE_RETRIES:
                    held.delete_attempts += 1
                    self._pending_deletes.append(held)
                else:
                    self._held.pop(held.message.receipt_handle, None)

    def _send_heartbeats(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                (held, seconds)
                for held in self._held.values()
                if held.running
                and not held.released
                and (
                    seconds := heartbeat_extension(
                        now, held.visible_at, held.deadline, self.visibility_timeout, held.received_at
                    )
                )
                is not None
            ]
        if not due:
            return
        refused = {
            m.receipt_handle
            for m in self.transport.change_visibility_batch(
                [(held.message, seconds) for held, seconds in due]
            )
        }
        for held, seconds in due:
            if held.message.receipt_handle not in refused:
                held.visible_at = now + seconds

    # --- drain -------------------------------------------------------------------------------------------

    def _drain(self, housekeeping: threading.Thread) -> None:
        started = self._stop_requested_at or time.monotonic()
        budget_end = started + self.config.stop_timeout_seconds
        with self._lock:
            log.info(
                "draining",
                extra={"running": self._running, "budgetSeconds": self.config.stop_timeout_seconds},
            )
        while time.monotonic() < budget_end:
            with self._lock:
                if self._running == 0:
                    break
            self._wake.wait(0.1)
            self._wake.clear()
        with self._lock:
            unfinished = [held for held in self._held.values() if held.running]
            for held in unfinished:
                held.released = True
                self._held.pop(held.message.receipt_handle)
        if unfinished:
            log.warning("stop timeout reached; releasing unfinished jobs", extra={"count": len(unfinished)})
            try:
                self.transport.change_visibility_batch([(held.message, 0) for held in unfinished])
            except SQS_ERRORS as exc:
                log.warning(
                    "release failed; messages reappear when visibility lapses", extra={"error": str(exc)}
                )
        self._housekeeping_done.set()
        housekeeping.join()
        for _ in range(DELETE_RETRIES):
            try:
                self._flush_deletes()
            except SQS_ERRORS as exc:
                log.warning("final delete flush failed", extra={"error": str(exc)})
            with self._lock:
                if not self._pending_deletes:
                    break
        self._protection.update(False, time.monotonic())
        self._executor.close()
        log.info("worker stopped", extra={"exitCode": self.exit_code})
