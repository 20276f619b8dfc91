"""Selective redrive against moto as a real server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.core.utils import unix_time
from redrive.mover import SelectiveMover
from redrive.ratelimit import TokenBucket
from redrive.request import QueuePair, parse_event
from redrive.service import run_redrive

from jobfleet_contract.status import JobStatusStore


def redrive(queues: Any, sqs: Any = None, *, max_redrives: int | None = None,
            context: Any = None, **event: Any) -> dict[str, Any]:
    tiers = {"standard": QueuePair(dlq_url=queues.dlq_url, target_url=queues.target_url)}
    return run_redrive(
        {"tier": "standard", "mode": "selective", **event},
        sqs=sqs or queues.sqs,
        tier_queues=tiers,
        max_redrives=max_redrives,
        remaining_millis=context.get_remaining_time_in_millis if context else lambda: 900_000,
    )


def job_ids(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted(body["jobId"] for body in bodies)



@pytest.mark.parametrize(
    ("event_filter", "moved_jobs"),
    [
        ({"types": ["report"]}, ["report-timeout-old", "report-value-new"]),
        ({"types": ["analysis", "onboarding"]}, ["analysis-timeout-new", "onboarding-untagged"]),
        ({"errorTypes": ["TimeoutError"]}, ["analysis-timeout-new", "report-timeout-old"]),
        ({"olderThanSeconds": 3600}, ["report-timeout-old"]),
        # The untagged message's age comes from SentTimestamp (just now).
        ({"newerThanSeconds": 3600}, ["analysis-timeout-new", "onboarding-untagged", "report-value-new"]),
        ({"types": ["report"], "errorTypes": ["TimeoutError"]}, ["report-timeout-old"]),
    ],
)
def test_each_filter_moves_only_the_matching_messages(queues, dead_letter, event_filter, moved_jobs):
    now = datetime.now(UTC)
    two_hours_ago = now - timedelta(hours=2)
    untagged_body = json.dumps({"jobId": "onboarding-untagged", "type": "onboarding", "payload": {},
                                "submittedAt": two_hours_ago.isoformat()})
    queues.put_dead_letters([
        dead_letter("report", error_type="TimeoutError", failed_at=two_hours_ago,
                    job_id="report-timeout-old"),
        dead_letter("report", error_type="ValueError", failed_at=now, job_id="report-value-new"),
        dead_letter("analysis", error_type="TimeoutError", failed_at=now, job_id="analysis-timeout-new"),
        # Dead-lettered by SQS's redrive policy: no worker attributes, the type only in the body.
        {"MessageBody": untagged_body},
    ])

    result = redrive(queues, filter=event_filter)

    assert job_ids(queues.bodies(queues.target_url)) == moved_jobs
    moved = len(moved_jobs)
    assert (result["examined"], result["matched"], result["moved"], result["failed"]) == (4, moved, moved, 0)
    # The rest stay in the DLQ and are visible again as soon as the run ends.
    assert result["remaining"] == 4 - moved
    assert queues.visible_count(queues.dlq_url) == 4 - moved


def test_copies_keep_body_and_attributes_and_count_the_redrive(queues, dead_letter):
    custom = {"tenant": {"DataType": "String.tenant", "StringValue": "acme"},
              "checksum": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}
    first = dead_letter("report", job_id="first", extra_attributes=custom)
    again = dead_letter("report", job_id="again", redrive_count="2", redrive_count_type="String")
    queues.put_dead_letters([first, again])

    result = redrive(queues)

    assert result["moved"] == 2
    copies = {json.loads(m["Body"])["jobId"]: m for m in queues.take_all(queues.target_url)}
    assert copies["first"]["Body"] == first["MessageBody"]
    assert copies["again"]["Body"] == again["MessageBody"]
    value_fields = ("DataType", "StringValue", "BinaryValue")
    first_attributes = {name: {k: v for k, v in attr.items() if k in value_fields}
                        for name, attr in copies["first"]["MessageAttributes"].items()}
    assert first_attributes == {**first["MessageAttributes"], **custom,
                                "jobfleet.redriveCount": {"DataType": "Number", "StringValue": "1"}}
    assert copies["again"]["MessageAttributes"]["jobfleet.redriveCount"]["StringValue"] == "3"


def test_dry_run_counts_but_changes_nothing(queues, dead_letter):
    queues.put_dead_letters([dead_letter("report", job_id=f"r{i}") for i in range(7)]
                            + [dead_letter("analysis", job_id=f"a{i}") for i in range(5)])
    before = {m["MessageId"]: m for m in queues.sqs.receive_message(
        QueueUrl=queues.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
    )["Messages"]}

    result = redrive(queues, dryRun=True, filter={"types": ["report"]})

    assert result == {"mode": "selective", "dryRun": True, "examined": 12, "matched": 7, "moved": 0,
                      "kept": 12, "failed": 0, "quarantined": 0, "malformed": 0, "stoppedEarly": False,
                      "stopReason": "drained", "remaining": 12}
    assert queues.visible_count(queues.target_url) == 0
    after = {m["MessageId"]: m for m in queues.take_all(queues.dlq_url)}
    assert len(after) == 12
    for message_id, message in before.items():
        assert after[message_id]["Body"] == message["Body"]
        assert after[message_id]["MessageAttributes"] == message["MessageAttributes"]


class RefusesOneCopy:
    """The moto client, except that the target queue refuses the copy of one chosen job."""

    def __init__(self, sqs: Any, refused_job_id: str) -> None:
        self._sqs = sqs
        self._refused_job_id = refused_job_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        refused = [e for e in Entries if json.loads(e["MessageBody"])["jobId"] == self._refused_job_id]
        accepted = [e for e in Entries if e not in refused]
        response = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=accepted)
        response.setdefault("Failed", []).extend(
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for e in refused
        )
        return response


def test_partial_send_failure_deletes_only_the_accepted_originals(queues, dead_letter):
    queues.put_dead_letters([dead_letter("report", job_id=f"job-{i}") for i in range(10)])

    result = redrive(queues, RefusesOneCopy(queues.sqs, refused_job_id="job-4"))

    assert (result["moved"], result["failed"], result["kept"]) == (9, 1, 1)
    assert job_ids(queues.bodies(queues.target_url)) == sorted(f"job-{i}" for i in range(10) if i != 4)
    assert job_ids(queues.bodies(queues.dlq_url)) == ["job-4"]


class DeliversTwice:
    """The moto client, except that SQS's at-least-once delivery hands out the first message again."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self._first: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        response = self._sqs.receive_message(**kwargs)
        messages = response.get("Messages", [])
        if self._first is None and messages:
            self._first = messages[0]
        elif messages:
            messages.append(self._first)
        return response


def test_a_message_delivered_twice_is_copied_once(queues, dead_letter):
    queues.put_dead_letters([dead_letter("report", job_id=f"job-{i}") for i in range(25)])

    result = redrive(queues, DeliversTwice(queues.sqs))

    assert (result["examined"], result["moved"]) == (25, 25)
    assert job_ids(queues.bodies(queues.target_url)) == sorted(f"job-{i}" for i in range(25))
    assert queues.visible_count(queues.dlq_url) == 0


def test_messages_redriven_max_times_are_quarantined_in_the_dlq(queues, dead_letter):
    queues.put_dead_letters([
        dead_letter("report", job_id="fresh"),
        dead_letter("report", job_id="once", redrive_count="1"),
        dead_letter("report", job_id="twice", redrive_count="2"),
        dead_letter("report", job_id="thrice", redrive_count="3", redrive_count_type="String"),
    ])

    result = redrive(queues, max_redrives=2)

    assert (result["matched"], result["moved"], result["quarantined"], result["kept"]) == (4, 2, 2, 2)
    assert job_ids(queues.bodies(queues.target_url)) == ["fresh", "once"]
    assert job_ids(queues.bodies(queues.dlq_url)) == ["thrice", "twice"]


def test_max_messages_moves_exactly_that_many(queues, dead_letter):
    queues.put_dead_letters([dead_letter("report") for _ in range(30)])

    result = redrive(queues, maxMessages=13)

    assert (result["moved"], result["stopReason"], result["remaining"]) == (13, "maxMessages", 17)
    assert queues.visible_count(queues.target_url) == 13


def test_stops_before_the_lambda_timeout_and_reports_what_remains(queues, dead_letter, fake_context):
    queues.put_dead_letters([dead_letter("report", job_id=f"job-{i}") for i in range(60)])
    # Every look at the clock costs a second and the run keeps 10 s back: it has time for 4 batches.
    context = fake_context(remaining_millis=16_000, millis_per_call=1_000)

    result = redrive(queues, context=context)

    assert (result["stoppedEarly"], result["stopReason"]) == (True, "timeLimit")
    assert (result["moved"], result["remaining"]) == (40, 20)
    moved = queues.bodies(queues.target_url)
    left = queues.bodies(queues.dlq_url)
    assert len(moved) == 40
    assert sorted(job_ids(moved) + job_ids(left)) == sorted(f"job-{i}" for i in range(60))


def test_rate_limit_paces_the_copies(queues, dead_letter, fake_context):
    queues.put_dead_letters([dead_letter("report") for _ in range(40)])
    clock = {"now": 0.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    request = parse_event({"dlqUrl": queues.dlq_url, "targetUrl": queues.target_url,
                           "ratePerSecond": 5, "mode": "selective"}, {})
    tally = SelectiveMover(queues.sqs, request, max_redrives=None,
                           remaining_millis=fake_context().get_remaining_time_in_millis,
                           rate_limiter=TokenBucket(5, clock=lambda: clock["now"]), sleep=sleep).run()

    assert tally.moved == 40
    # 40 copies at 5/s, the first 5 free from the initial burst.
    assert sum(slept) == pytest.approx(7.0)


def test_a_rate_wait_longer_than_the_time_left_stops_instead(queues, dead_letter, fake_context):
    queues.put_dead_letters([dead_letter("report") for _ in range(20)])
    request = parse_event({"dlqUrl": queues.dlq_url, "targetUrl": queues.target_url,
                           "ratePerSecond": 1, "mode": "selective"}, {})
    tally = SelectiveMover(queues.sqs, request, max_redrives=None,
                           remaining_millis=fake_context(remaining_millis=10_500).get_remaining_time_in_millis,
                           rate_limiter=TokenBucket(1, clock=lambda: 0.0), sleep=pytest.fail).run()

    # The first copy is the burst; the second would wait 1 s with only 0.5 s to spare.
    assert (tally.moved, tally.stop_reason, tally.remaining) == (1, "timeLimit", 19)


def test_redriven_jobs_are_marked_queued_in_the_status_table(queues, dead_letter, moto_endpoint, jobs_table):
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    table = jobs_table.name
    for job, status in (("dead", "dead-lettered"), ("retrying", "failed"), ("done", "succeeded")):
        dynamodb.put_item(TableName=table, Item={"jobId": {"S": job}, "status": {"S": status},
                                                 "lastError": {"S": "boom"}})
    jobs = ("dead", "retrying", "done", "unknown")
    queues.put_dead_letters([dead_letter("report", job_id=job) for job in jobs])

    result = run_redrive(
        {"dlqUrl": queues.dlq_url, "targetUrl": queues.target_url, "mode": "selective"},
        sqs=queues.sqs, tier_queues={}, max_redrives=None, remaining_millis=lambda: 900_000,
        status_store=JobStatusStore(jobs_table, ttl_days=7, now=lambda: "2026-03-01T00:00:00.000Z"),
    )

    assert result["moved"] == 4
    items = {job: dynamodb.get_item(TableName=table, Key={"jobId": {"S": job}}).get("Item")
             for job in jobs}
    for job in ("dead", "retrying"):
        expires_at = int(items[job].pop("expiresAt")["N"])
        # Generation 1: the copy's redrive count; writes of that copy's run supersede this one.
        assert items[job] == {"jobId": {"S": job}, "status": {"S": "queued"},
                              "updatedAt": {"S": "2026-03-01T00:00:00.000Z"},
                              "attempts": {"N": "0"}, "generation": {"N": "1"}}
        # The TTL restarts: a redriven job's record lives as long as a new one's.
        assert abs(expires_at - (time.time() + 7 * 86400)) < 120
    # The contract's transition table: a finished job stays finished, none is created.
    assert items["done"]["status"] == {"S": "succeeded"}
    assert items["unknown"] is None


@pytest.fixture()
def fast_moto_sqs(monkeypatch):
    """Two speed-only patches of the in-process moto server, for thousands of messages.

    For every message it returns, moto computes all queue attributes (each a pass over every
    stored message) just to read the retention period, and its clock does datetime arithmetic
    several times per stored message on each pass: a 5,000-message drain crawls. The same
    retention check from the queue's own field, and the same clock from time.time(), change
    nothing but speed.
    """
    import moto.sqs.models as moto_sqs

    def within_retention(backend, queue_name, message):
        retention_seconds = int(backend.get_queue(queue_name).message_retention_period)
        return retention_seconds + message.sent_timestamp / 1000 > time.time()

    monkeypatch.setattr(moto_sqs.SQSBackend, "is_message_valid_based_on_retention_period", within_retention)
    monkeypatch.setattr(moto_sqs, "unix_time", lambda dt=None: time.time() if dt is None else unix_time(dt))
    monkeypatch.setattr(moto_sqs, "unix_time_millis",
                        lambda dt=None: time.time() * 1000 if dt is None else unix_time(dt) * 1000)


@pytest.mark.slow
@pytest.mark.timeout(600)  # about 95 s on an idle 2-core machine; more when it is shared
@pytest.mark.usefixtures("fast_moto_sqs")
def test_five_thousand_messages_drain_with_none_lost_and_none_duplicated(queues, dead_letter):
    expected = [f"job-{i:05d}" for i in range(5000)]
    queues.put_dead_letters([dead_letter("report", job_id=job) for job in expected])

    result = redrive(queues)

    assert (result["examined"], result["moved"], result["failed"], result["remaining"]) == (5000, 5000, 0, 0)
    assert job_ids(queues.bodies(queues.target_url)) == expected
    assert queues.visible_count(queues.dlq_url) == 0
