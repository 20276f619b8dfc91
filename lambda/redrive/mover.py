"""Selective redrive: receive from the DLQ in batches, copy the matching messages to the target queue,
delete each original only once its copy was accepted.

Messages that stay in the DLQ (unmatched, quarantined, dry-run, failed) are held invisible until the
end of the run and then made visible again in one pass. Releasing them batch by batch would hand
them straight back to the next receive (SQS gives no "unseen first" guarantee, and moto returns
them first), so a run would re-examine the same messages instead of progressing. Their visibility
timeout ends when the Lambda would be killed, so even a crashed run hides them no longer than that.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from jobfleet_contract.attributes import (
    MalformedMessage,
    Message,
    attributes_for_copy,
    body_for_copy,
    job_id,
    redrive_count,
)
from redrive import SERVICE_NAME
from redrive.ledger import CopyLedger
from redrive.ratelimit import TokenBucket
from redrive.request import RedriveRequest

logger = Logger(service=SERVICE_NAME, child=True)

# Receive, send, delete and change-visibility all take at most 10 entries per call.
BATCH_SIZE = 10
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
# Time kept back before the Lambda timeout for the last batch and reporting; releasing the held
# messages gets its own reserve on top, one SQS call per BATCH_SIZE held messages.
DEFAULT_STOP_MARGIN_MILLIS = 10_000
# Least time reserved per release call; the slowest SQS call seen in this run raises it.
MIN_MILLIS_PER_CALL = 100


@dataclass
class RedriveTally:
    dry_run: bool
    examined: int = 0
    matched: int = 0
    moved: int = 0
    failed: int = 0
    quarantined: int = 0
    malformed: int = 0
    # "drained" (no visible message left to examine), "maxMessages" or "timeLimit".
    stop_reason: str = "drained"
    remaining: int | None = None

    def as_result(self) -> dict[str, Any]:
        return {
            "mode": "selective",
            "dryRun": self.dry_run,
            "examined": self.examined,
            "matched": self.matched,
            "moved": self.moved,
            "kept": self.examined - self.moved,
            "failed": self.failed,
            "quarantined": self.quarantined,
            "malformed": self.malformed,
            "stoppedEarly": self.stop_reason == "timeLimit",
            "stopReason": self.stop_reason,
            "remaining": self.remaining,
        }


class SelectiveMover:
    """One selective redrive of one DLQ; create one per invocation."""

    def __init__(
        self,
        sqs: Any,
        request: RedriveRequest,
        *,
        max_redrives: int | None,
        remaining_millis: Callable[[], int],
        rate_limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_moved: Callable[[Sequence[Message]], None] | None = None,
        ledger: CopyLedger | None = None,
        stop_margin_millis: int = DEFAULT_STOP_MARGIN_MILLIS,
        receive_wait_seconds: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sqs = sqs
        self._request = request
        self._max_redrives = max_redrives
        self._remaining_millis = remaining_millis
        self._rate_limiter = rate_limiter
        self._sleep = sleep
        self._now = now
        self._on_moved = on_moved
        self._ledger = ledger
        self._clock = clock
        self._millis_per_call = MIN_MILLIS_PER_CALL
        self._stop_margin_millis = stop_margin_millis
        # Long polling asks every SQS server, so an empty answer really means "nothing visible".
        self._receive_wait_seconds = receive_wait_seconds
        self._tally = RedriveTally(dry_run=request.dry_run)
        self._candidates = 0  # matched and not quarantined: moved, failed, or would move in a dry run
        self._stopped_by: str | None = None
        self._held_receipts: list[str] = []
        # SQS delivers at least once: a message may come back under a new receipt handle.
        self._examined_ids: set[str] = set()
        self._moved_ids: set[str] = set()

    def run(self) -> RedriveTally:
        try:
            while self._stop_reason() is None:
                batch = self._receive()
                if not batch:
                    break
                self._process(batch)
        finally:
            self._release_held()
        self._tally.stop_reason = self._stopped_by or "drained"
        self._tally.remaining = self._visible_in_dlq()
        logger.info("selective redrive finished", **self._tally.as_result())
        return self._tally

    def _stop_reason(self) -> str | None:
        if self._stopped_by is None:
            if self._request.max_messages is not None and self._candidates >= self._request.max_messages:
                self._stopped_by = "maxMessages"
            elif self._remaining_millis() < self._reserve_millis():
                self._stopped_by = "timeLimit"
        return self._stopped_by

    def _reserve_millis(self) -> int:
        """Time to keep back: the fixed margin plus one release call per BATCH_SIZE held messages."""
        release_calls = math.ceil(len(self._held_receipts) / BATCH_SIZE)
        return self._stop_margin_millis + release_calls * self._millis_per_call

    def _receive(self) -> list[Message]:
        wanted = BATCH_SIZE
        if self._request.max_messages is not None:
            wanted = min(BATCH_SIZE, self._request.max_messages - self._candidates)
        # Held messages must stay invisible until released, and no longer than this run can live.
        visibility = min(MAX_VISIBILITY_TIMEOUT_SECONDS, max(1, math.ceil(self._remaining_millis() / 1000)))
        started = self._clock()
        response = self._sqs.receive_message(
            QueueUrl=self._request.queues.dlq_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=self._receive_wait_seconds,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        messages = response.get("Messages", [])
        if messages:
            # A receive that found messages did not long-poll: its duration is SQS's latency now.
            self._millis_per_call = max(self._millis_per_call, math.ceil((self._clock() - started) * 1000))
        return messages

    def _process(self, batch: list[Message]) -> None:
        now = self._now()
        to_send: list[Message] = []
        redelivered_moved: list[Message] = []
        for message in batch:
            message_id = message["MessageId"]
            if message_id in self._moved_ids:
                redelivered_moved.append(message)
            elif message_id in self._examined_ids:
                self._hold([message])
            elif self._examine(message, now):
                to_send.append(message)
        if redelivered_moved:
            # Its copy is already in the target queue: deleting is all that is left to do.
            self._hold(self._delete(redelivered_moved))
        if to_send and self._ledger is not None:
            to_send = self._finish_earlier_copies(to_send)
        if to_send:
            self._move(to_send)

    def _finish_earlier_copies(self, messages: list[Message]) -> list[Message]:
        """Deletes the originals an earlier run already copied (its delete failed); returns the rest."""
        assert self._ledger is not None
        copied = self._ledger.copied(message["MessageId"] for message in messages)
        done = [message for message in messages if message["MessageId"] in copied]
        if not done:
            return messages
        not_deleted = self._delete(done)
        self._hold(not_deleted)
        self._tally.failed += len(not_deleted)
        not_deleted_ids = {message["MessageId"] for message in not_deleted}
        for message in done:
            logger.warning("copy already sent by an earlier redrive; original deleted, not sent again",
                           messageId=message["MessageId"], jobId=job_id(message),
                           deleted=message["MessageId"] not in not_deleted_ids)
            if message["MessageId"] not in not_deleted_ids:
                self._moved_ids.add(message["MessageId"])
                self._tally.moved += 1
        return [message for message in messages if message["MessageId"] not in copied]

    def _examine(self, message: Message, now: datetime) -> bool:
        """Counts the message; True when it should be copied now, otherwise holds it in the DLQ."""
        self._examined_ids.add(message["MessageId"])
        self._tally.examined += 1
        try:
            matches = self._request.message_filter.matches(message, now)
            count = redrive_count(message) if matches else 0
        except MalformedMessage as malformed:
            # One unreadable message must not end the run: it stays in the DLQ, named in the log.
            self._tally.malformed += 1
            logger.warning("malformed dead letter kept in the DLQ", messageId=message["MessageId"],
                           jobId=job_id(message), reason=str(malformed))
            self._hold([message])
            return False
        if not matches:
            self._hold([message])
            return False
        self._tally.matched += 1
        if self._max_redrives is not None and count >= self._max_redrives:
            self._tally.quarantined += 1
            logger.warning("quarantined: redrive limit reached", messageId=message["MessageId"],
                           jobId=job_id(message), redriveCount=count, maxRedrives=self._max_redrives)
            self._hold([message])
            return False
        self._candidates += 1
        if self._request.dry_run:
            self._hold([message])
            return False
        return True

    def _move(self, messages: list[Message]) -> None:
        # One send never carries more than the rate limit's burst (one second's worth, at least 1).
        chunk = BATCH_SIZE if self._rate_limiter is None else min(BATCH_SIZE, self._rate_limiter.burst)
        for start in range(0, len(messages), chunk):
            if self._stopped_by is not None:
                self._hold(messages[start:])
                return
            self._move_chunk(messages[start:start + chunk])

    def _move_chunk(self, messages: list[Message]) -> None:
        if not self._wait_for_rate(len(messages)):
            self._hold(messages)
            self._stopped_by = "timeLimit"
            return
        try:
            accepted = self._send_copies(messages)
        except Exception:
            # Whether any copy got through is unknown; the originals stay, visible again at the end.
            self._hold(messages)
            raise
        if not accepted:
            return
        if self._ledger is not None:
            # Before the delete: if the delete fails, the next run finds this and only deletes.
            self._ledger.record_copied(message["MessageId"] for message in accepted)
        not_deleted = self._delete(accepted)
        for message in not_deleted:
            logger.error("copy sent but original not deleted; it stays in the DLQ",
                         messageId=message["MessageId"], jobId=job_id(message),
                         resentByNextRun=self._ledger is None)
        self._hold(not_deleted)
        self._tally.failed += len(not_deleted)
        not_deleted_ids = {message["MessageId"] for message in not_deleted}
        for message in accepted:
            if message["MessageId"] not in not_deleted_ids:
                self._moved_ids.add(message["MessageId"])
                self._tally.moved += 1
        # After the deletes, so a failing callback cannot leave originals behind their copies.
        if self._on_moved is not None:
            self._on_moved(accepted)

    def _wait_for_rate(self, count: int) -> bool:
        """Sleeps as the rate limit requires; False when that wait would run past the time limit."""
        if self._rate_limiter is None:
            return True
        wait_seconds = self._rate_limiter.reserve(count)
        if wait_seconds * 1000 > self._remaining_millis() - self._reserve_millis():
            return False
        if wait_seconds > 0:
            self._sleep(wait_seconds)
        return True

    def _send_copies(self, messages: list[Message]) -> list[Message]:
        """Sends one batch of copies; returns the messages whose copy the target queue accepted."""
        by_entry_id = {str(index): message for index, message in enumerate(messages)}
        response = self._sqs.send_message_batch(
            QueueUrl=self._request.queues.target_url,
            Entries=[
                {
                    "Id": entry_id,
                    "MessageBody": body_for_copy(message),
                    "MessageAttributes": attributes_for_copy(message),
                }
                for entry_id, message in by_entry_id.items()
            ],
        )
        refused = [by_entry_id[failure["Id"]] for failure in response.get("Failed", [])]
        for failure in response.get("Failed", []):
            logger.warning("target queue refused a copy; original kept in the DLQ",
                           messageId=by_entry_id[failure["Id"]]["MessageId"],
                           code=failure.get("Code"), reason=failure.get("Message"))
        self._hold(refused)
        self._tally.failed += len(refused)
        return [by_entry_id[success["Id"]] for success in response.get("Successful", [])]

    def _delete(self, messages: list[Message]) -> list[Message]:
        """Deletes from the DLQ, retrying refused entries once; returns the messages still not deleted."""
        pending = {str(index): message for index, message in enumerate(messages)}
        for _attempt in range(2):
            if not pending:
                break
            response = self._sqs.delete_message_batch(
                QueueUrl=self._request.queues.dlq_url,
                Entries=[{"Id": entry_id, "ReceiptHandle": message["ReceiptHandle"]}
                         for entry_id, message in pending.items()],
            )
            for success in response.get("Successful", []):
                del pending[success["Id"]]
        return list(pending.values())

    def _hold(self, messages: Iterable[Message]) -> None:
        self._held_receipts.extend(message["ReceiptHandle"] for message in messages)

    def _release_held(self) -> None:
        for start in range(0, len(self._held_receipts), BATCH_SIZE):
            chunk = self._held_receipts[start:start + BATCH_SIZE]
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self._request.queues.dlq_url,
                Entries=[{"Id": str(index), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                         for index, receipt in enumerate(chunk)],
            )
            if response.get("Failed"):
                # Not lost: these reappear when their visibility timeout (this run's deadline) ends.
                logger.warning("could not release some held messages", failed=response["Failed"])
        self._held_receipts.clear()

    def _visible_in_dlq(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._request.queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])
