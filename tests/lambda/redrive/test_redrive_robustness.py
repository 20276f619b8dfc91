"""Redrive defects found end to end: duplicates after a failed delete, malformed attributes,
the hand-back reserve, bursts of the rate limit. SQS and DynamoDB are moto as a real server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from redrive.ledger import CopyLedger
from redrive.mover import SelectiveMover
from redrive.ratelimit import TokenBucket
from redrive.request import QueuePair, parse_event
from redrive.service import run_redrive

from jobfleet_contract.status import JobStatusStore


def redrive(queues: Any, sqs: Any = None, table: Any = None, **event: Any) -> dict[str, Any]:
    return run_redrive(
        {"tier": "standard", "mode": "selective", **event},
        sqs=sqs or queues.sqs,
        tier_queues={"standard": QueuePair(dlq_url=queues.dlq_url, target_url=queues.target_url)},
        max_redrives=3,
        remaining_millis=lambda: 900_000,
        status_store=None if table is None else JobStatusStore(table),
        ledger=None if table is None else CopyLedger(table),
    )


def job_ids(queues: Any, url: str) -> list[str]:
    return sorted(json.loads(message["Body"])["jobId"] for message in queues.take_all(url))


class DeletesFail:
    """The moto client, except that DeleteMessageBatch refuses every entry (throttled DLQ)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Successful": [], "Failed": [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for entry in Entries]}


def test_a_failed_delete_is_counted_and_the_next_run_sends_no_second_copy(queues, dead_letter, jobs_table):
    expected = sorted(f"job-{i}" for i in range(12))
    queues.put_dead_letters([dead_letter("report", job_id=job) for job in expected])

    first = redrive(queues, DeletesFail(queues.sqs), jobs_table)

    assert (first["moved"], first["failed"], first["remaining"]) == (0, 12, 12)
    second = redrive(queues, table=jobs_table)

    assert (second["moved"], second["failed"], second["remaining"]) == (12, 0, 0)
    # One copy of each job in the target queue, none left behind in the DLQ.
    assert job_ids(queues, queues.target_url) == expected
    assert queues.visible_count(queues.dlq_url) == 0


@pytest.mark.parametrize(
    "bad_count",
    [
        {"DataType": "String", "StringValue": "Infinity"},
        {"DataType": "String", "StringValue": "1e999999"},
        {"DataType": "String", "StringValue": "9" * 5000},
        {"DataType": "Binary", "BinaryValue": b"\x03"},
    ],
)
def test_a_malformed_attribute_is_accounted_for_and_the_run_goes_on(queues, dead_letter, bad_count):
    queues.put_dead_letters(
        [dead_letter("report", job_id=f"good-{i}") for i in range(5)]
        + [dead_letter("report", job_id="bad", extra_attributes={"jobfleet.redriveCount": bad_count})]
        + [dead_letter("report", job_id="bad-time", extra_attributes={"jobfleet.failedAt": {
            "DataType": "String", "StringValue": "0001-01-01T00:00:00+23:59"}})])

    result = redrive(queues, filter={"olderThanSeconds": 0})

    assert (result["examined"], result["moved"], result["malformed"]) == (7, 5, 2)
    assert job_ids(queues, queues.target_url) == [f"good-{i}" for i in range(5)]
    assert job_ids(queues, queues.dlq_url) == ["bad", "bad-time"]


class SimulatedTime:
    """A clock that only SQS calls advance: every call costs `call_millis` of the Lambda's time."""

    def __init__(self, sqs: Any, budget_millis: int, call_millis: int) -> None:
        self._sqs = sqs
        self._call_millis = call_millis
        self.elapsed_millis = 0
        self.budget_millis = budget_millis

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._sqs, name)

        def timed(**kwargs: Any) -> Any:
            self.elapsed_millis += self._call_millis
            return method(**kwargs)

        return timed

    def remaining_millis(self) -> int:
        return self.budget_millis - self.elapsed_millis

    def seconds(self) -> float:
        return self.elapsed_millis / 1000


def test_the_hand_back_reserve_grows_with_the_held_messages(queues, dead_letter):
    # 300 messages the filter keeps in the DLQ; each SQS call takes 500 ms; 20 s to live. A fixed
    # 10 s reserve would receive 21 batches and need 10.5 s to hand them back.
    queues.put_dead_letters([dead_letter("report") for _ in range(300)])
    timed = SimulatedTime(queues.sqs, budget_millis=20_000, call_millis=500)
    request = parse_event({"dlqUrl": queues.dlq_url, "targetUrl": queues.target_url,
                           "mode": "selective", "filter": {"types": ["analysis"]}}, {})

    tally = SelectiveMover(timed, request, max_redrives=None, remaining_millis=timed.remaining_millis,
                           clock=timed.seconds).run()

    # Held messages released and the result reported before the function would be killed.
    assert tally.stop_reason == "timeLimit"
    assert timed.remaining_millis() > 0
    assert queues.visible_count(queues.dlq_url) == 300


class RecordsSends:
    """The moto client, recording the clock and size of every SendMessageBatch."""

    def __init__(self, sqs: Any, clock: dict[str, float]) -> None:
        self._sqs = sqs
        self._clock = clock
        self.sends: list[tuple[float, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.sends.append((self._clock["now"], len(kwargs["Entries"])))
        return self._sqs.send_message_batch(**kwargs)


@pytest.mark.parametrize("rate", [0.5, 2.5, 7, 12])
def test_the_rate_limit_never_sends_more_than_one_second_worth_at_once(queues, dead_letter, rate):
    queues.put_dead_letters([dead_letter("report") for _ in range(30)])
    clock = {"now": 0.0}
    recorder = RecordsSends(queues.sqs, clock)

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    request = parse_event({"dlqUrl": queues.dlq_url, "targetUrl": queues.target_url,
                           "ratePerSecond": rate, "mode": "selective"}, {})
    tally = SelectiveMover(recorder, request, max_redrives=None, remaining_millis=lambda: 900_000,
                           rate_limiter=TokenBucket(rate, clock=lambda: clock["now"]), sleep=sleep).run()

    assert tally.moved == 30
    burst = max(1, int(rate))
    sent = 0
    for at, size in recorder.sends:
        assert size <= burst
        sent += size
        # By any moment: one burst plus what the rate allows since the start, never more.
        assert sent <= burst + rate * at + 1e-9


def test_nan_and_infinite_rates_are_refused_with_an_error_result(queues):
    for rate in (float("nan"), float("inf")):
        result = redrive(queues, ratePerSecond=rate)
        assert result == {"error": f"ratePerSecond: Input should be a finite number, got {rate!r}"}


def test_a_fifo_queue_is_refused_by_name(queues, sqs):
    fifo_dlq = sqs.create_queue(QueueName=f"r-{uuid.uuid4().hex[:8]}-dlq.fifo",
                                Attributes={"FifoQueue": "true"})["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"r-{uuid.uuid4().hex[:8]}.fifo",
                            Attributes={"FifoQueue": "true"})["QueueUrl"]
    result = run_redrive({"dlqUrl": fifo_dlq, "targetUrl": fifo}, sqs=sqs, tier_queues={},
                         max_redrives=None, remaining_millis=lambda: 900_000)
    assert result == {"error": f"FIFO queues are not supported: {fifo_dlq}"}
