"""The poll loop: receive only what there is room for, admit each job against memory by its type, run it
on its own thread, keep held messages invisible, settle every outcome through one path, drain on stop.

Threads: the main thread polls SQS and admits received messages; one thread per started job; one
housekeeping thread that flushes deletes, sends visibility heartbeats, samples memory and holds ECS task
protection; the status writer's thread.
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

from jobfleet_contract.attributes import REDRIVE_COUNT, dead_letter_attributes
from jobfleet_contract.envelope import Deferral, Envelope, deferred_body, parse_envelope, read_deferral
from jobfleet_contract.environment import ConfigError
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import SUCCEEDED as STATUS_SUCCEEDED
from jobfleet_contract.status import Run
from jobfleet_contract.timestamps import iso_now
from worker.completion import Completion
from worker.config import WorkerConfig
from worker.dispatch import JobContext, handler_for
from worker.errors import BreakerOpen, error_type_name
from worker.isolation import make_executor
from worker.lifecycle import TaskProtection, touch_health_file
from worker.memory import MemoryReader, MemoryReading
from worker.observability import Metrics
from worker.policy import (
    CircuitBreaker,
    DeadLetter,
    FootprintModel,
    Retry,
    attempt_number,
    decide_failure,
    deferral_delay,
    empty_receive_pause,
    heartbeat_extension,
    memory_paused,
    receive_count,
)
from worker.settle import (
    DEAD_LETTERED,
    DEFERRED,
    FAILED,
    RELEASED,
    SKIPPED,
    SUCCEEDED,
    JobRecorder,
    Outcome,
    StatusWriter,
)
from worker.transport import Message, QueueNotFound, SqsTransport

log = logging.getLogger("worker.runtime")

SQS_ERRORS = (BotoCoreError, ClientError)
HOUSEKEEPING_INTERVAL = 0.1
IDLE_RECHECK_SECONDS = 0.5  # how often a full or memory-paused worker re-evaluates (and touches health)
MAX_RECEIVE_BACKOFF = 30.0
# Paused on memory with nothing running means the memory is not the jobs' (a leak, fragmentation):
# waiting cannot fix it, a fresh task can.
MEMORY_STUCK_SECONDS = 60.0
DELETE_RETRIES = 3
# A heartbeat fires once less than half the visibility timeout is left and needs a tick plus a round
# trip to land; below this nothing keeps a running message invisible.
MIN_VISIBILITY_TIMEOUT = 2
# How long a job waits for its `running` claim (which tells a duplicate of a succeeded job) before it
# runs anyway; 0 while the status table is failing or slow.
STATUS_CLAIM_WAIT = 2.0
STATUS_FLUSH_SECONDS = 5.0

# A held message is WAITING (for memory), RUNNING (its handler), SETTLING (dead-letter or deferral in
# progress) or SETTLED (awaiting its batched delete).
WAITING, RUNNING, SETTLING, SETTLED = "waiting", "running", "settling", "settled"


@dataclass(eq=False)
class _Held:
    """A message this worker holds: waiting for memory, running, or settled and awaiting its delete.

    Keyed by message id: a redelivery of a held message (its visibility lapsed during an SQS outage)
    only refreshes the receipt handle, it never starts a second attempt."""

    message: Message
    received_at: float  # monotonic
    visible_at: float  # monotonic time its current visibility lapses
    queue_wait_ms: float | None
    deferral: Deferral  # the original body and the attempts spent before a breaker deferral
    attempt: int
    envelope: Envelope | None = None
    rejection: PermanentError | None = None  # not an envelope, or no handler: dead-lettered unrun
    deadline: float = math.inf  # monotonic; set when the job starts
    state: str = WAITING
    released: bool = False  # handed back to SQS by the drain; a late completion must not touch it
    delete_attempts: int = 0

    @property
    def job_type(self) -> str | None:
        return self.envelope.job_type if self.envelope else None


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
        completion: Completion | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.transport = transport
        self._read_memory = memory_reader
        self._executor = executor or make_executor(
            config.isolation,
            config.handler_modules,
            config.recycle_after_jobs,
            config.recycle_rss_bytes,
            config.job_isolation,
        )
        self._status = StatusWriter(status_store) if status_store is not None else None
        self._completion = completion or Completion(tier=config.tier)
        self._recorder = JobRecorder(
            self._status, metrics or Metrics(config.tier), config.worker_id, self._completion
        )
        self._protection = protection
        self._jitter = jitter
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}  # by message id
        self._waiting: list[_Held] = []  # received, waiting for memory, in arrival order
        self._pending_deletes: list[_Held] = []
        self._breaker = CircuitBreaker(
            config.breaker_failure_threshold, config.breaker_cooldown_seconds, config.job_breakers
        )
        self._footprint = FootprintModel()
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
        """Consume until stopped; raises ConfigError when the queue cannot be worked at all."""
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

    # --- receiving and admission ------------------------------------------------------------------------

    def _load_visibility_timeout(self) -> bool:
        delay = 1.0
        while not self._stop.is_set():
            touch_health_file(self.config.health_file)
            try:
                timeout = self.transport.visibility_timeout()
            except QueueNotFound as exc:
                raise ConfigError(str(exc)) from None
            except SQS_ERRORS as exc:
                log.warning(
                    "cannot read queue attributes; retrying", extra={"error": str(exc), "delay": delay}
                )
                self._stop.wait(delay)
                delay = min(MAX_RECEIVE_BACKOFF, delay * 2)
                continue
            if timeout < MIN_VISIBILITY_TIMEOUT:
                raise ConfigError(
                    f"queue {self.config.queue_url} has VisibilityTimeout={timeout}s; the worker needs at "
                    f"least {MIN_VISIBILITY_TIMEOUT}s to keep a running message invisible"
                )
            self.visibility_timeout = timeout
            return True
        return False

    def _poll_loop(self) -> None:
        failures = 0
        paused_idle_since: float | None = None
        while not self._stop.is_set():
            touch_health_file(self.config.health_file)
            with self._lock:
                paused_idle = self._paused and not self._count(RUNNING)
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
            wanted = self._admit()
            if wanted == 0:
                self._wake.wait(IDLE_RECHECK_SECONDS)
                continue
            try:
                messages = self.transport.receive(wanted, self.config.poll_wait_seconds)
            except QueueNotFound as exc:
                log.error("queue not found; stopping", extra={"error": str(exc)})
                self.exit_code = 2
                self.request_stop("queue-not-found")
                break
            except SQS_ERRORS as exc:
                failures += 1
                delay = min(MAX_RECEIVE_BACKOFF, 2.0 ** (failures - 1)) * (0.5 + self._jitter() / 2)
                log.warning(
                    "receive failed; backing off", extra={"error": str(exc), "delay": round(delay, 2)}
                )
                self._stop.wait(delay)
                continue
            failures = 0
            if not messages:
                self._stop.wait(empty_receive_pause(self.config.poll_wait_seconds))
            for message in messages:
                if self._stop.is_set():
                    # Received while the stop arrived: never started, so hand it straight back.
                    self._set_visibility_quietly(message, 0)
                else:
                    self._accept(message)

    def _accept(self, message: Message) -> None:
        now = time.monotonic()
        with self._lock:
            held = self._held.get(message.message_id)
            if held is not None:
                # Its visibility lapsed while held (heartbeats failed): SQS only honours the newest
                # receipt handle, and the job is already ours.
                held.message, held.visible_at = message, now + self.visibility_timeout
                log.warning(
                    "redelivered while held; not started again", extra={"messageId": message.message_id}
                )
                return
        deferral = read_deferral(message.body)
        wait = time.time() * 1000 - message.sent_timestamp_ms if message.sent_timestamp_ms else None
        held = _Held(
            message,
            now,
            now + self.visibility_timeout,
            wait,
            deferral,
            attempt_number(message.receive_count, deferral.prior_attempts),
        )
        try:
            held.envelope = parse_envelope(deferral.body)
            handler_for(held.envelope.job_type)
        except PermanentError as exc:
            held.rejection = exc
        with self._lock:
            self._held[message.message_id] = held
            self._waiting.append(held)

    def _count(self, state: str) -> int:
        return sum(1 for held in self._held.values() if held.state == state)

    def _running_types(self) -> dict[object, str]:
        return {
            held.message.message_id: held.job_type
            for held in self._held.values()
            if held.state == RUNNING and held.job_type
        }

    def _admit(self) -> int:
        """Start what may start among the received messages; return how many more to receive.

        Called by the poll loop, by every finishing job and by housekeeping: a message waiting for
        memory must not wait for a long poll to end."""
        now = time.monotonic()
        starts: list[tuple[_Held, Callable[[_Held], None]]] = []
        with self._lock:
            # Read under the lock: a reading taken before a job's state changed would charge its memory
            # to the jobs still running.
            reading = self._read_memory()
            self._update_pause(reading)
            self._footprint.observe(reading.used_bytes, self._running_types())
            running_types = list(self._running_types().values())
            probe_waiting = False  # a type never seen waits to run alone: admit nothing after it
            for held in list(self._waiting):
                action: Callable[[_Held], None]
                job_type = held.envelope.job_type if held.envelope else ""
                if held.rejection is not None or not job_type:
                    action = self._dead_letter_unrun
                elif self._breaker.blocked(job_type, now):
                    action = self._defer
                elif (
                    not self._paused
                    and not probe_waiting
                    and self._footprint.admits(
                        job_type,
                        running_types,
                        reading.used_bytes,
                        reading.limit_bytes,
                        self.config.memory_high_water,
                    )
                ):
                    action = self._run_job if self._breaker.allow(job_type, now) else self._defer
                    if action == self._run_job:
                        running_types.append(job_type)
                else:
                    probe_waiting = probe_waiting or not self._footprint.knows(job_type)
                    continue  # waits for memory; lighter jobs behind it may still start
                self._waiting.remove(held)
                held.state = RUNNING if action == self._run_job else SETTLING
                starts.append((held, action))
            free = self.config.concurrency - self._count(RUNNING) - len(self._waiting)
            wanted = receive_count(free, probe_waiting, self._paused, self._stop.is_set())
        for held, action in starts:
            threading.Thread(
                target=self._job_thread,
                args=(held, action),
                name=f"job-{held.message.message_id}",
                daemon=True,
            ).start()
        return wanted

    def _update_pause(self, reading: MemoryReading) -> None:
        """Apply the hysteresis to a reading (lock held)."""
        paused = memory_paused(
            reading.fraction, self._paused, self.config.memory_high_water, self.config.memory_low_water
        )
        if paused != self._paused:
            log.warning(
                "memory high water: receiving paused" if paused else "memory below low water: resuming",
                extra={"usedBytes": reading.used_bytes, "limitBytes": reading.limit_bytes},
            )
            if paused:
                self._recorder.metrics.memory_pause(reading.fraction)
            self._paused = paused

    # --- one job --------------------------------------------------------------------------------------------

    def _job_thread(self, held: _Held, action: Callable[[_Held], None]) -> None:
        try:
            action(held)
        except Exception:  # our own bookkeeping failed: never leave the message held and protected
            log.exception(
                "settling failed; handing the message back", extra={"messageId": held.message.message_id}
            )
            self._set_visibility_quietly(held.message, 0)
            self._forget(held)
        finally:
            with self._lock:
                held.state = SETTLED
                self._footprint.discard(held.message.message_id)
                waiting = bool(self._waiting)
            self._wake.set()
            if waiting and not self._stop.is_set():
                self._admit()  # the memory this job held may let a waiting one start now

    def _run_job(self, held: _Held) -> None:
        envelope = held.envelope
        assert envelope is not None  # admission runs only parsed envelopes
        if self._claimed_status(held, envelope, held.attempt) == STATUS_SUCCEEDED:
            log.info("duplicate delivery of a succeeded job; deleting it", extra={"jobId": envelope.job_id})
            self._settle(held, self._outcome(held, SKIPPED))
            return
        timeout = self.config.timeout_for(envelope.job_type, self.visibility_timeout)
        started = time.monotonic()
        held.deadline = started + timeout
        ctx = JobContext(
            envelope.job_id,
            envelope.job_type,
            held.attempt,
            time.time() + timeout,
            logging.getLogger(f"worker.job.{envelope.job_type}"),
        )
        error: BaseException | None = None
        result = None
        try:
            # Storing the result is part of the job: a result that cannot be stored fails it.
            result = self._completion.store_result(envelope.job_id, self._executor.execute(envelope, ctx))
        except BaseException as exc:  # handler code may raise anything; every failure is a job outcome
            error = exc
        duration_ms = (time.monotonic() - started) * 1000
        with self._lock:
            memory, worker_memory = self._footprint.job_finished(held.message.message_id)
            opened = self._record_breaker(envelope.job_type, error)
        if opened:
            log.warning("circuit breaker opened", extra={"jobType": envelope.job_type})
            self._recorder.metrics.breaker_open(envelope.job_type)
        measured = dict(duration_ms=duration_ms, memory_bytes=memory, worker_memory_bytes=worker_memory)
        if error is None:
            self._settle(held, self._outcome(held, SUCCEEDED, result=result, **measured))
            return
        decision = decide_failure(
            isinstance(error, PermanentError),
            held.attempt,
            self.config.max_receive_count,
            self.config.backoff_base_seconds,
            self.config.backoff_max_seconds,
            self._jitter(),
        )
        if isinstance(decision, DeadLetter):
            self._settle(held, self._outcome(held, DEAD_LETTERED, error=error, **measured))
        else:
            self._settle(
                held,
                self._outcome(
                    held, FAILED, error=error, detail=f"retry in {decision.delay_seconds}s", **measured
                ),
                retry=decision,
            )

    def _record_breaker(self, job_type: str, error: BaseException | None) -> bool:
        """Feed the breaker one outcome (lock held); True when it opened."""
        if error is None:
            self._breaker.record_success(job_type)
            return False
        if isinstance(error, PermanentError):
            self._breaker.record_permanent(job_type)
            return False
        return self._breaker.record_failure(job_type, time.monotonic())

    def _claimed_status(self, held: _Held, envelope: Envelope, attempt: int) -> str | None:
        """Mark the job running; returns the stored status when that was refused (None otherwise, and
        when the table does not answer in time: the job then runs, at-least-once)."""
        if self._status is None:
            return None
        claim = self._status.claim(envelope.job_id, envelope.job_type, attempt, _run(held))
        try:
            return claim.result(timeout=STATUS_CLAIM_WAIT if self._status.responsive else 0)
        except TimeoutError:
            self._status.responsive = False
            return None

    def _dead_letter_unrun(self, held: _Held) -> None:
        self._settle(held, self._outcome(held, DEAD_LETTERED, error=held.rejection))

    def _defer(self, held: _Held) -> None:
        """Breaker open: put the job back for later without spending an attempt (see policy.deferred_body)."""
        assert held.envelope is not None  # only parsed envelopes are deferred
        with self._lock:
            delay = deferral_delay(self._breaker.retry_after(held.envelope.job_type, time.monotonic()))
        self._settle(
            held, self._outcome(held, DEFERRED, error=BreakerOpen(f"deferred {delay}s")), delay=delay
        )

    def _outcome(self, held: _Held, kind: str, **details) -> Outcome:
        envelope = held.envelope
        return Outcome(
            kind,
            envelope.job_id if envelope else None,
            envelope.job_type if envelope else None,
            held.attempt,
            queue_wait_ms=held.queue_wait_ms,
            run=_run(held),
            **details,
        )

    # --- settling: the SQS half, then the shared record -------------------------------------------------

    def _settle(self, held: _Held, outcome: Outcome, *, retry: Retry | None = None, delay: int = 0) -> None:
        """The one place an outcome turns into SQS bookkeeping, a status write and an outcome line."""
        if held.released:
            log.info(
                "job finished after it was released; the redelivery decides", extra={"jobId": outcome.job_id}
            )
            return
        message = held.message
        if outcome.kind in (SUCCEEDED, SKIPPED):
            self._queue_delete(held)
        elif outcome.kind == FAILED:
            # The retry waits out its backoff invisible in the queue, not in this process.
            self._set_visibility_quietly(message, retry.delay_seconds)
            self._forget(held)
        elif outcome.kind == DEAD_LETTERED:
            if not self._send_to_dlq(held, outcome):
                return  # stays in the queue and is decided again after its visibility timeout
            self._queue_delete(held)
        elif outcome.kind == DEFERRED:
            self._requeue(held, delay)
        self._recorder.record(outcome)

    def _send_to_dlq(self, held: _Held, outcome: Outcome) -> bool:
        assert outcome.error is not None  # a dead letter always has its reason
        attributes, dropped = dead_letter_attributes(
            held.message.attributes,
            error_type=error_type_name(outcome.error),
            error_message=str(outcome.error),
            attempt=held.attempt,
            worker_id=self.config.worker_id,
            failed_at=iso_now(),
            job_type=outcome.job_type or "unknown",
        )
        if dropped:
            log.warning(
                "SQS allows 10 message attributes; dropped from the DLQ copy", extra={"dropped": dropped}
            )
        try:
            self.transport.send_to_dlq(held.deferral.body, attributes)
        except SQS_ERRORS as exc:
            log.error(
                "dead-lettering failed; message stays in the queue",
                extra={"messageId": held.message.message_id, "error": str(exc)},
            )
            self._forget(held)
            return False
        return True

    def _requeue(self, held: _Held, delay: int) -> None:
        body = deferred_body(Deferral(held.deferral.body, held.attempt - 1, held.deferral.deferrals + 1))
        try:
            if body is None:
                raise ValueError("the deferral record would exceed SQS's body limit")
            self.transport.requeue_with_delay(held.message, body, delay)
        except (*SQS_ERRORS, ValueError) as exc:
            # Fallback: hide the original instead; costs one receive count, never loses the job.
            log.warning("deferral re-send failed; delaying in place", extra={"error": str(exc)})
            self._set_visibility_quietly(held.message, delay)
            self._forget(held)
            return
        self._queue_delete(held)

    def _queue_delete(self, held: _Held) -> None:
        with self._lock:
            self._pending_deletes.append(held)

    def _forget(self, held: _Held) -> None:
        with self._lock:
            self._forget_locked(held)

    def _forget_locked(self, held: _Held) -> None:
        if self._held.get(held.message.message_id) is held:
            del self._held[held.message.message_id]

    def _set_visibility_quietly(self, message: Message, seconds: int) -> None:
        try:
            self.transport.change_visibility(message, seconds)
        except SQS_ERRORS as exc:
            log.warning(
                "visibility change failed; the message reappears when its visibility lapses",
                extra={"messageId": message.message_id, "error": str(exc)},
            )

    # --- housekeeping thread -----------------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        while not self._housekeeping_done.wait(HOUSEKEEPING_INTERVAL):
            self._housekeeping_tick()

    def _housekeeping_tick(self) -> None:
        now = time.monotonic()
        if not self._stop.is_set():
            self._admit()  # also samples memory for the footprint model
        with self._lock:
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
            retry = {m.message_id for m in self.transport.delete_batch([h.message for h in batch])}
        except SQS_ERRORS:
            with self._lock:
                self._pending_deletes[:0] = batch
            raise
        with self._lock:
            for held in batch:
                if held.message.message_id in retry and held.delete_attempts < DELETE_RETRIES:
                    held.delete_attempts += 1
                    self._pending_deletes.append(held)
                else:
                    self._forget_locked(held)

    def _send_heartbeats(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                (held, seconds)
                for held in self._held.values()
                if held.state in (WAITING, RUNNING)
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
            m.message_id
            for m in self.transport.change_visibility_batch(
                [(held.message, seconds) for held, seconds in due]
            )
        }
        for held, seconds in due:
            if held.message.message_id not in refused:
                held.visible_at = now + seconds

    # --- drain -------------------------------------------------------------------------------------------

    def _drain(self, housekeeping: threading.Thread) -> None:
        started = self._stop_requested_at or time.monotonic()
        budget_end = started + self.config.stop_timeout_seconds
        with self._lock:
            # Waiting messages never started: they go straight back.
            unstarted, self._waiting = self._waiting, []
            log.info(
                "draining",
                extra={"running": self._count(RUNNING), "budgetSeconds": self.config.stop_timeout_seconds},
            )
        self._release(unstarted)
        while time.monotonic() < budget_end:
            with self._lock:
                if not self._count(RUNNING):
                    break
            self._wake.wait(0.1)
            self._wake.clear()
        with self._lock:
            unfinished = [held for held in self._held.values() if held.state == RUNNING]
        if unfinished:
            log.warning("stop timeout reached; releasing unfinished jobs", extra={"count": len(unfinished)})
            self._release(unfinished)
            for held in unfinished:
                self._recorder.record(self._outcome(held, RELEASED))
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
        if self._status is not None:
            self._status.close(STATUS_FLUSH_SECONDS)
        log.info("worker stopped", extra={"exitCode": self.exit_code})

    def _release(self, held_messages: list[_Held]) -> None:
        """Hand messages back to SQS at once (visibility 0); a late completion will not touch them."""
        if not held_messages:
            return
        with self._lock:
            for held in held_messages:
                held.released = True
                self._forget_locked(held)
        try:
            self.transport.change_visibility_batch([(held.message, 0) for held in held_messages])
        except SQS_ERRORS as exc:
            log.warning("release failed; messages reappear when visibility lapses", extra={"error": str(exc)})
