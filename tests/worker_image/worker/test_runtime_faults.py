"""Failure modes found by an adversarial pass (issue 14), worker in-process against the moto server."""

from __future__ import annotations

import json
import threading
import time

import jobfleet_test_jobs
from botocore.exceptions import EndpointConnectionError
from worker.memory import MemoryReading
from worker.transport import SqsTransport, sqs_client

from tests.worker_image.conftest import (
    drain_queue,
    queue_counts,
    records,
    send_job,
    wait_for,
)


def _attrs(message: dict) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


def test_permanent_error_in_the_half_open_trial_resolves_the_breaker(
    sqs, make_queues, start_worker, tmp_path
):
    """Defect 1: a trial that raised PermanentError left the type half-open for the life of the process."""
    queues = make_queues()
    running = start_worker(
        queues, concurrency=1, breaker_failure_threshold=1, breaker_cooldown_seconds=1, max_receive_count=1
    )
    send_job(sqs, queues.url, "test.behave", {"recordDir": str(tmp_path / "a"), "raise": "transient"})
    wait_for(lambda: [m for m in running.metrics() if m.get("event") == "breaker-open"])
    send_job(sqs, queues.url, "test.behave", {"recordDir": str(tmp_path / "b"), "raise": "permanent"})
    wait_for(lambda: records(tmp_path / "b", "start"))  # the permanent job ran as the half-open trial
    wait_for(lambda: len(drain_queue(sqs, queues.dlq_url)) >= 1)

    good = send_job(sqs, queues.url, "test.behave", {"recordDir": str(tmp_path / "c")})
    wait_for(lambda: records(tmp_path / "c", "done"), timeout=20)
    running.stop()
    assert records(tmp_path / "c", "done") == [(good, 1)]


class JobMemory:
    """Memory that follows the running test.memory jobs: idle share + the share each running job declares."""

    def __init__(self, idle: float = 0.1, limit: int = 1 << 30) -> None:
        self.idle, self.limit = idle, limit
        self.peak = 0.0

    def __call__(self) -> MemoryReading:
        fraction = self.idle + sum(dict(jobfleet_test_jobs.memory_held).values())
        self.peak = max(self.peak, fraction)
        return MemoryReading(int(fraction * self.limit), self.limit)


def test_memory_guard_resumes_after_one_job_that_used_most_of_the_limit(
    sqs, make_queues, start_worker, tmp_path
):
    """Defect 2: after a job whose footprint exceeded the high-water headroom, nothing was admitted again."""
    queues = make_queues(visibility_timeout=10)
    running = start_worker(queues, memory_reader=JobMemory(idle=0.1))
    send_job(sqs, queues.url, "test.memory", {"recordDir": str(tmp_path), "fraction": 0.85, "seconds": 0.5})
    wait_for(lambda: records(tmp_path, "done"))
    ids = {
        send_job(sqs, queues.url, "test.memory", {"recordDir": str(tmp_path), "fraction": 0.05, "seconds": 0})
        for _ in range(3)
    }
    wait_for(lambda: ids <= {j for j, _ in records(tmp_path, "done")}, timeout=20)
    running.stop()


def test_mixed_job_types_never_push_memory_past_the_limit(sqs, make_queues, start_worker, tmp_path):
    """Defect 3: a footprint learned from a light type let many heavy jobs start at once."""
    queues = make_queues(visibility_timeout=10)
    memory = JobMemory(idle=0.1)
    running = start_worker(queues, memory_reader=memory, concurrency=16)
    light = {"recordDir": str(tmp_path), "fraction": 0.01, "seconds": 0}
    send_job(sqs, queues.url, "test.memory-light", light)
    wait_for(lambda: records(tmp_path, "done"))
    # Two batches that become visible at once, so a receive sees many heavy jobs before any has run.
    for first in (0, 10):
        entries = []
        for i in range(first, min(first + 10, 16)):
            job_type, fraction = ("test.memory", 0.25) if i % 2 else ("test.memory-light", 0.01)
            body = {
                "jobId": f"mix-{i}",
                "type": job_type,
                "submittedAt": "2024-05-01T12:00:00Z",
                "payload": {"recordDir": str(tmp_path), "fraction": fraction, "seconds": 0.4},
            }
            entries.append({"Id": str(i), "MessageBody": json.dumps(body), "DelaySeconds": 2})
        sqs.send_message_batch(QueueUrl=queues.url, Entries=entries)
    wait_for(lambda: len(records(tmp_path, "done")) == 17, timeout=60)
    running.stop()
    assert memory.peak <= 1.0, f"memory reached {memory.peak:.2f} of the limit"
    # Each outcome line says how much memory its job took, so a peak can be tied to a job type.
    heavy = [m for m in running.outcomes("succeeded") if m["JobType"] == "test.memory"]
    light = [m for m in running.outcomes("succeeded") if m["JobType"] == "test.memory-light"]
    assert all(m["JobMemoryPeak"] >= 0.2 * memory.limit for m in heavy)
    assert max(m["JobMemoryPeak"] for m in light) < 0.1 * memory.limit
    assert {"Name": "JobMemoryPeak", "Unit": "Bytes"} in heavy[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]


def test_deeply_nested_body_is_dead_lettered_at_first_receive_and_not_held(sqs, make_queues, start_worker):
    """Defect 4: a body that makes the JSON parser raise RecursionError escaped the malformed-message path."""
    queues = make_queues()
    body = "[" * 100_000 + "]" * 100_000
    sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    running = start_worker(queues)
    dead = wait_for(lambda: drain_queue(sqs, queues.dlq_url))
    wait_for(lambda: running.worker.held_count == 0)
    running.stop()
    assert _attrs(dead[0])["jobfleet.errorType"] == "InvalidEnvelope"
    assert "nested" in _attrs(dead[0])["jobfleet.errorMessage"]
    assert _attrs(dead[0])["jobfleet.attempt"] == "1"
    assert sum(queue_counts(sqs, queues.url).values()) == 0


def test_async_handler_is_awaited(sqs, make_queues, start_worker, tmp_path):
    """Defect 5: an `async def` handler was reported succeeded without running."""
    queues = make_queues()
    job_id = send_job(sqs, queues.url, "test.async", {"recordDir": str(tmp_path)})
    running = start_worker(queues)
    wait_for(lambda: running.outcomes("succeeded"))
    running.stop()
    assert records(tmp_path, "done") == [(job_id, 1)]


def test_duplicate_delivery_of_a_succeeded_job_is_skipped_and_deleted(
    sqs, make_queues, start_worker, tmp_path, status_table
):
    """Defect 7: a second delivery of a job that already succeeded ran it again."""
    _, store = status_table
    queues = make_queues()
    running = start_worker(queues, status_store=store)
    job_id = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0})
    wait_for(lambda: (store.get(job_id) or {}).get("status") == "succeeded")
    send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0}, job_id=job_id)
    wait_for(lambda: running.outcomes("skipped"))
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
    running.stop()
    assert records(tmp_path, "start") == [(job_id, 1)]
    assert store.get(job_id)["status"] == "succeeded"


class OutageTransport(SqsTransport):
    """Real SQS calls, except that while ``down`` is set visibility changes fail as if SQS were unreachable
    (a partial outage: the heartbeats lapse, receives keep working)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.down = threading.Event()

    def _check(self):
        if self.down.is_set():
            raise EndpointConnectionError(endpoint_url="http://sqs.outage")

    def change_visibility_batch(self, entries):
        self._check()
        return super().change_visibility_batch(entries)


def test_redelivery_of_a_message_still_running_does_not_start_a_second_attempt(
    sqs, make_queues, start_worker, tmp_path
):
    """Defect 8: held messages were keyed by receipt handle, so a redelivery after an outage ran twice."""
    queues = make_queues(visibility_timeout=2)
    transport = OutageTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url)
    running = start_worker(queues, transport=transport, concurrency=2, job_max_seconds=30, jitter=lambda: 0.0)
    send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path / "warm-up"), "seconds": 0})
    wait_for(lambda: records(tmp_path / "warm-up", "done"))  # memory admission has seen a job complete
    job_id = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 7})
    wait_for(lambda: records(tmp_path, "start"))
    transport.down.set()  # heartbeats fail: the message becomes visible again while it runs
    time.sleep(3)
    transport.down.clear()
    wait_for(lambda: records(tmp_path, "done"), timeout=30)
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0, timeout=30)
    running.stop()
    assert records(tmp_path, "start") == [(job_id, 1)]
    assert [m["jobId"] for m in running.outcomes("succeeded")].count(job_id) == 1


def test_deferral_never_spends_an_attempt_even_with_ten_attributes(sqs, make_queues, start_worker, tmp_path):
    """Defect 9: with 9+ attributes the deferral fell back to a visibility delay, spending a receive."""
    queues = make_queues()
    running = start_worker(
        queues,
        concurrency=1,
        breaker_failure_threshold=1,
        breaker_cooldown_seconds=2,
        max_receive_count=1,
    )
    send_job(sqs, queues.url, "test.behave", {"recordDir": str(tmp_path / "bad"), "raise": "transient"})
    wait_for(lambda: [m for m in running.metrics() if m.get("event") == "breaker-open"])
    ten = {f"producer{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    good = send_job(sqs, queues.url, "test.behave", {"recordDir": str(tmp_path / "good")}, attributes=ten)
    wait_for(lambda: records(tmp_path / "good", "done"), timeout=30)
    running.stop()
    assert running.outcomes("deferred")  # it was deferred at least once...
    assert records(tmp_path / "good", "done") == [(good, 1)]  # ...and still ran as attempt 1
    dead = drain_queue(sqs, queues.dlq_url)
    assert [json.loads(m["Body"])["jobId"] for m in dead] != [good] and len(dead) == 1  # only the bad one


class CountingTransport(SqsTransport):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.receives = 0

    def receive(self, max_messages, wait_seconds):
        self.receives += 1
        return super().receive(max_messages, wait_seconds)


def test_zero_long_poll_wait_does_not_spin(sqs, make_queues, start_worker):
    """Defect 11: WORKER_POLL_WAIT_SECONDS=0 on an empty queue made the loop spin a core."""
    queues = make_queues()
    transport = CountingTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url)
    running = start_worker(queues, transport=transport, poll_wait_seconds=0)
    wait_for(lambda: transport.receives >= 1)
    time.sleep(2)
    running.stop()
    assert transport.receives <= 6  # one empty receive a second at most, not hundreds
