"""`python -m worker run` as a real subprocess receiving real signals, against the moto server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from moto.server import ThreadedMotoServer

from jobfleet_tools.local.processes import free_port
from tests.worker_image.conftest import (
    WORKER_IMAGE_DIR,
    drain_queue,
    queue_counts,
    records,
    send_job,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.slow


def _spawn(env: dict[str, str], tmp_path, name: str = "worker") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        env=env,
        cwd=WORKER_IMAGE_DIR,
        stdout=open(tmp_path / f"{name}.out", "w"),
        stderr=open(tmp_path / f"{name}.err", "w"),
    )


def _outcomes(tmp_path, name: str = "worker") -> list[dict]:
    lines = (tmp_path / f"{name}.out").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_sigterm_drains_in_flight_jobs_and_exits_zero_losing_nothing(sqs, make_queues, tmp_path):
    queues = make_queues(visibility_timeout=3)
    record_dir = tmp_path / "records"
    ids = {
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 2})
        for _ in range(6)
    }
    worker = _spawn(worker_env(queues, tmp_path, WORKER_CONCURRENCY="2"), tmp_path)
    try:
        wait_for(lambda: len(records(record_dir, "start")) >= 2)
        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(timeout=20)  # WORKER_STOP_TIMEOUT_SECONDS
    finally:
        worker.kill()
    assert exit_code == 0
    finished = {j for j, _ in records(record_dir, "done")}
    started = {j for j, _ in records(record_dir, "start")}
    assert started == finished and len(finished) >= 2  # every job it started, it finished
    # The unstarted ones are back in the queue right away (not stuck invisible until a timeout).
    remaining = wait_for(lambda: drain_queue(sqs, queues.url))
    remaining_ids = {json.loads(m["Body"])["jobId"] for m in remaining}
    assert remaining_ids | finished == ids and not remaining_ids & finished
    assert drain_queue(sqs, queues.dlq_url) == []
    assert len([o for o in _outcomes(tmp_path) if o.get("outcome") == "succeeded"]) == len(finished)


def test_sigkill_mid_job_loses_nothing_the_message_comes_back(sqs, make_queues, tmp_path):
    queues = make_queues(visibility_timeout=2)
    record_dir = tmp_path / "records"
    job_id = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 3})
    env = worker_env(queues, tmp_path)
    first = _spawn(env, tmp_path, "first")
    try:
        wait_for(lambda: records(record_dir, "start"))
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        first.kill()
    assert records(record_dir, "done") == []

    second = _spawn(env, tmp_path, "second")
    try:
        wait_for(lambda: records(record_dir, "done"))
        wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    finally:
        second.kill()
    assert records(record_dir, "done") == [(job_id, 2)]  # redelivered: attempt 2
    assert drain_queue(sqs, queues.dlq_url) == []


def test_worker_survives_sqs_endpoint_down_then_back(sqs, make_queues, tmp_path, moto_endpoint):
    """A second moto server (same in-process backend, so same queues) is stopped and restarted on its port."""
    queues = make_queues(visibility_timeout=5)
    record_dir = tmp_path / "records"
    port = free_port()
    flaky_endpoint = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    flaky_endpoint.start()
    env = worker_env(queues, tmp_path, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    worker = _spawn(env, tmp_path)
    try:
        send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 0})
        wait_for(lambda: len(records(record_dir, "done")) == 1)

        flaky_endpoint.stop()
        wait_for(lambda: "receive failed" in (tmp_path / "worker.err").read_text())
        after_outage = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 0})
        time.sleep(1)
        assert worker.poll() is None  # still alive while SQS is unreachable

        flaky_endpoint = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        flaky_endpoint.start()
        wait_for(lambda: after_outage in {j for j, _ in records(record_dir, "done")}, timeout=60)
        wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
        flaky_endpoint.stop()
