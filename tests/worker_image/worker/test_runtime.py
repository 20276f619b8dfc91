"""The poll loop against a real moto server, worker in-process (so readers and spies can be injected)."""

from __future__ import annotations

import json
import time

import jobfleet_test_jobs
import pytest
from worker.transport import SqsTransport, sqs_client

from tests.worker_image.conftest import (
    FixedMemory,
    drain_queue,
    queue_counts,
    records,
    send_job,
    wait_for,
)


def _attrs(message: dict) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


def test_happy_path_runs_every_job_once_and_deletes_it(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues()
    ids = {
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0}) for _ in range(12)
    }
    running = start_worker(queues)

    wait_for(lambda: len(records(tmp_path, "done")) == 12)
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
    assert running.stop() == 0
    assert {job_id for job_id, _ in records(tmp_path, "done")} == ids
    succeeded = running.outcomes("succeeded")
    assert {m["jobId"] for m in succeeded} == ids
    emf = succeeded[0]["_aws"]["CloudWatchMetrics"][0]
    assert emf["Namespace"] == "JobFleet" and emf["Dimensions"] == [["JobType", "Tier"]]
    assert {m["Name"] for m in emf["Metrics"]} == {
        "JobsSucceeded",
        "JobDuration",
        "QueueWait",
        "JobMemoryPeak",
    }
    assert succeeded[0]["QueueWait"] >= 0 and succeeded[0]["Tier"] == "test"
    assert drain_queue(sqs, queues.dlq_url) == []


class SpyTransport(SqsTransport):
    """Records what the worker asked SQS for, and how many messages it held at that moment."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.receive_requests: list[int] = []
        self.visibility_changes: list[int] = []
        self.heartbeat_batches: list[list[int]] = []

    def receive(self, max_messages, wait_seconds):
        self.receive_requests.append(max_messages)
        return super().receive(max_messages, wait_seconds)

    def change_visibility(self, message, seconds):
        self.visibility_changes.append(seconds)
        super().change_visibility(message, seconds)

    def change_visibility_batch(self, entries):
        self.heartbeat_batches.append([seconds for _, seconds in entries])
        return super().change_visibility_batch(entries)


@pytest.mark.slow
def test_concurrency_bound_holds_and_nothing_is_prefetched(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues(visibility_timeout=10)
    jobfleet_test_jobs.max_active = 0
    for _ in range(15):
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0.3})
    transport = SpyTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url)
    held_samples: list[int] = []
    running = start_worker(queues, transport=transport, concurrency=3)

    def all_done():
        held_samples.append(running.worker.held_count)
        return len(records(tmp_path, "done")) == 15

    wait_for(all_done, interval=0.01)
    running.stop()
    assert jobfleet_test_jobs.max_active == 3  # the bound is reached...
    assert max(transport.receive_requests) <= 3  # ...never asked for more than free slots
    # Held = running + finished-awaiting-batched-delete; never a backlog of unstarted messages.
    assert max(held_samples) <= 3 + 3


@pytest.mark.slow
def test_heartbeat_keeps_a_long_job_invisible(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues(visibility_timeout=2)
    send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 5})
    transport = SpyTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url)
    running = start_worker(queues, transport=transport, job_max_seconds=30)
    wait_for(lambda: records(tmp_path, "start"))

    stolen = []
    while not records(tmp_path, "done"):  # 5 s, 2.5x the visibility timeout
        stolen += sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=0).get("Messages", [])
        time.sleep(0.2)
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
    running.stop()
    assert stolen == []
    assert len(records(tmp_path, "start")) == 1
    assert len(transport.heartbeat_batches) >= 2
    assert all(seconds <= 2 for batch in transport.heartbeat_batches for seconds in batch)


@pytest.mark.slow
def test_transient_failure_retries_with_backoff_then_succeeds(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues()
    job_id = send_job(sqs, queues.url, "test.fail-until", {"recordDir": str(tmp_path), "succeedOn": 3})
    transport = SpyTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url)
    running = start_worker(queues, transport=transport, max_receive_count=5, jitter=lambda: 0.0)

    wait_for(lambda: records(tmp_path, "done"))
    running.stop()
    assert sorted(attempt for _, attempt in records(tmp_path, "start")) == [1, 2, 3]
    # base 1 s, equal jitter with jitter=0: attempt 1 -> ceil(0.5) = 1 s, attempt 2 -> 1 s (step 2 / 2).
    assert transport.visibility_changes == [1, 1]
    failed = running.outcomes("failed")
    assert [m["attempt"] for m in failed] == [1, 2] and failed[0]["errorType"] == "ConnectionError"
    assert running.outcomes("succeeded")[0]["jobId"] == job_id
    assert drain_queue(sqs, queues.dlq_url) == []


def test_permanent_error_goes_to_dlq_at_once_with_reason_and_original_attributes(
    sqs, make_queues, start_worker, tmp_path
):
    queues = make_queues()
    original = {
        "producer": {"DataType": "String", "StringValue": "node-api"},
        "jobfleet.redriveCount": {"DataType": "Number", "StringValue": "1"},
    }
    job_id = send_job(sqs, queues.url, "test.permanent", {"recordDir": str(tmp_path)}, attributes=original)
    running = start_worker(queues)

    dead = wait_for(lambda: drain_queue(sqs, queues.dlq_url))
    running.stop()
    assert len(records(tmp_path, "start")) == 1
    attrs = _attrs(dead[0])
    assert attrs["jobfleet.errorType"] == "PermanentError"
    assert attrs["jobfleet.errorMessage"] == "customer record is malformed"
    assert attrs["jobfleet.attempt"] == "1"
    assert attrs["jobfleet.workerId"] == "test-worker"
    assert attrs["jobfleet.jobType"] == "test.permanent"
    assert attrs["jobfleet.failedAt"].endswith("Z")
    assert attrs["producer"] == "node-api" and attrs["jobfleet.redriveCount"] == "1"
    assert json.loads(dead[0]["Body"])["jobId"] == job_id
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
    assert running.outcomes("dead-lettered")[0]["JobsDeadLettered"] == 1


@pytest.mark.slow
def test_last_allowed_attempt_is_dead_lettered_by_the_worker(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues()
    send_job(sqs, queues.url, "test.fail-until", {"recordDir": str(tmp_path), "succeedOn": 99})
    running = start_worker(queues, max_receive_count=2, jitter=lambda: 0.0)

    dead = wait_for(lambda: drain_queue(sqs, queues.dlq_url))
    running.stop()
    attrs = _attrs(dead[0])
    assert attrs["jobfleet.errorType"] == "ConnectionError"
    assert attrs["jobfleet.attempt"] == "2"
    assert "downstream unavailable (attempt 2)" in attrs["jobfleet.errorMessage"]
    assert sorted(a for _, a in records(tmp_path, "start")) == [1, 2]


@pytest.mark.parametrize(
    ("body", "error_type", "job_type"),
    [
        ("not json at all", "InvalidEnvelope", "unknown"),
        (
            json.dumps(
                {"jobId": "j1", "type": "test.sleep", "payload": [], "submittedAt": "2024-01-01T00:00:00Z"}
            ),
            "InvalidEnvelope",
            "unknown",
        ),
        (
            json.dumps(
                {"jobId": "j2", "type": "no.such.type", "payload": {}, "submittedAt": "2024-01-01T00:00:00Z"}
            ),
            "UnknownJobType",
            "no.such.type",
        ),
    ],
)
def test_malformed_or_unknown_messages_are_dead_lettered_never_retried(
    sqs, make_queues, start_worker, body, error_type, job_type
):
    queues = make_queues()
    sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    running = start_worker(queues)
    dead = wait_for(lambda: drain_queue(sqs, queues.dlq_url))
    running.stop()
    assert dead[0]["Body"] == body
    assert _attrs(dead[0])["jobfleet.errorType"] == error_type
    assert _attrs(dead[0])["jobfleet.jobType"] == job_type
    assert _attrs(dead[0])["jobfleet.attempt"] == "1"
    assert running.outcomes("dead-lettered")[0]["JobType"] == "unknown"


@pytest.mark.slow
def test_open_breaker_defers_one_type_while_others_flow(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues()
    flaky_dir, ok_dir = tmp_path / "flaky", tmp_path / "ok"
    for _ in range(5):
        send_job(sqs, queues.url, "test.flaky", {"recordDir": str(flaky_dir)})
    ok_ids = {
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(ok_dir), "seconds": 0}) for _ in range(8)
    }
    running = start_worker(
        queues, concurrency=1, breaker_failure_threshold=2, breaker_cooldown_seconds=60, max_receive_count=2
    )

    wait_for(lambda: {j for j, _ in records(ok_dir, "done")} == ok_ids)
    wait_for(lambda: len(running.outcomes("deferred")) >= 3)
    wait_for(lambda: queue_counts(sqs, queues.url)["ApproximateNumberOfMessagesDelayed"] >= 3)
    running.stop()
    assert len(records(flaky_dir, "start")) == 2  # threshold reached, then no more flaky runs
    assert next(m for m in running.metrics() if m.get("event") == "breaker-open")["BreakerOpens"] == 1
    assert drain_queue(sqs, queues.dlq_url) == []  # deferral spent no attempts: nothing dead-lettered


@pytest.mark.slow
def test_memory_guard_pauses_above_high_water_and_resumes_below_low_water(
    sqs, make_queues, start_worker, tmp_path
):
    queues = make_queues()
    memory = FixedMemory(fraction=0.9)
    running = start_worker(queues, memory_reader=memory)
    wait_for(lambda: running.worker.memory_paused)
    ids = {
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0}) for _ in range(3)
    }

    reads = memory.reads
    wait_for(lambda: memory.reads >= reads + 4)  # the loop re-evaluated several times while paused
    assert records(tmp_path, "start") == []
    memory.fraction = 0.7  # between the marks: hysteresis keeps it paused
    reads = memory.reads
    wait_for(lambda: memory.reads >= reads + 4)
    assert running.worker.memory_paused and records(tmp_path, "start") == []

    memory.fraction = 0.5
    wait_for(lambda: {j for j, _ in records(tmp_path, "done")} == ids)
    running.stop()
    pauses = [m for m in running.metrics() if m.get("event") == "memory-pause"]
    assert len(pauses) == 1 and pauses[0]["MemoryPauses"] == 1


def test_memory_held_with_no_job_running_makes_the_worker_exit_for_replacement(
    sqs, make_queues, start_worker, monkeypatch
):
    monkeypatch.setattr("worker.runtime.MEMORY_STUCK_SECONDS", 0.5)
    running = start_worker(make_queues(), memory_reader=FixedMemory(fraction=0.95))
    running.thread.join(15)
    assert not running.thread.is_alive() and running.result["exit"] == 1
