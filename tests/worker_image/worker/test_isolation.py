"""Process isolation: handlers in recycled child processes, killed at their deadline."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from worker.dispatch import JobContext
from worker.errors import JobTimeout, RemoteJobError
from worker.isolation import ProcessExecutor

from jobfleet_contract.envelope import Envelope
from jobfleet_contract.errors import PermanentError
from tests.worker_image.conftest import (
    TEST_JOBS_MODULE,
    drain_queue,
    queue_counts,
    records,
    send_job,
    wait_for,
)

pytestmark = pytest.mark.slow


def _run(executor, job_type: str, payload: dict, timeout: float = 30) -> None:
    job_id = uuid.uuid4().hex
    envelope = Envelope(job_id, job_type, payload, "2024-05-01T12:00:00Z")
    executor.execute(envelope, JobContext(job_id, job_type, 1, time.time() + timeout, logging.getLogger("t")))


def _pids(record_dir) -> list[int]:
    return [
        int(path.name.split("--")[3])
        for path in sorted(record_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    ]


def test_children_are_recycled_after_n_jobs_and_errors_keep_their_type(tmp_path):
    executor = ProcessExecutor((TEST_JOBS_MODULE,), recycle_after_jobs=2, recycle_rss_bytes=None)
    try:
        for _ in range(4):
            _run(executor, "test.pid", {"recordDir": str(tmp_path)})
        pids = _pids(tmp_path)
        assert pids[0] == pids[1] != pids[2] == pids[3]
        with pytest.raises(PermanentError, match="malformed") as info:
            _run(executor, "test.permanent", {"recordDir": str(tmp_path)})
        assert info.value.error_type == "PermanentError"
        with pytest.raises(RemoteJobError) as info:
            _run(executor, "test.fail-until", {"recordDir": str(tmp_path), "succeedOn": 5})
        assert info.value.error_type == "ConnectionError"
    finally:
        executor.close()


def test_child_over_rss_limit_is_replaced(tmp_path):
    executor = ProcessExecutor(
        (TEST_JOBS_MODULE,), recycle_after_jobs=None, recycle_rss_bytes=16 * 1024 * 1024
    )
    try:
        _run(executor, "test.pid", {"recordDir": str(tmp_path)})
        _run(executor, "test.pid", {"recordDir": str(tmp_path)})
        pids = _pids(tmp_path)
        assert pids[0] != pids[1]  # any interpreter with the handlers loaded is over 16 MiB
    finally:
        executor.close()


def test_hung_handler_is_killed_at_its_deadline(tmp_path):
    executor = ProcessExecutor((TEST_JOBS_MODULE,), recycle_after_jobs=None, recycle_rss_bytes=None)
    try:
        _run(executor, "test.pid", {"recordDir": str(tmp_path)})  # warm: the child is started
        with pytest.raises(JobTimeout):
            _run(executor, "test.hang", {"recordDir": str(tmp_path), "seconds": 60}, timeout=1)
        assert executor.children_started == 1
        _run(executor, "test.pid", {"recordDir": str(tmp_path)})  # a fresh child takes over
        assert executor.children_started == 2
    finally:
        executor.close()


def test_worker_in_process_mode_frees_the_slot_of_a_hung_job(sqs, make_queues, start_worker, tmp_path):
    queues = make_queues(visibility_timeout=2)
    hung = send_job(sqs, queues.url, "test.hang", {"recordDir": str(tmp_path), "seconds": 60})
    running = start_worker(
        queues, isolation="process", concurrency=1, job_timeouts={"test.hang": 1.5}, max_receive_count=1
    )
    dead = wait_for(lambda: drain_queue(sqs, queues.dlq_url))
    ok = send_job(sqs, queues.url, "test.pid", {"recordDir": str(tmp_path)})
    wait_for(lambda: ok in {j for j, _ in records(tmp_path, "start")})
    wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
    running.stop()
    assert dead[0]["MessageAttributes"]["jobfleet.errorType"]["StringValue"] == "JobTimeout"
    assert hung in dead[0]["Body"]
