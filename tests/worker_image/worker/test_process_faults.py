"""Failure modes found by an adversarial pass (issue 14) that need a real `python -m worker` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from faults import BlackHole

from tests.worker_image.conftest import (
    CHECKOUT_PATH,
    SUPPORT_DIR,
    WORKER_IMAGE_DIR,
    drain_queue,
    queue_counts,
    records,
    send_job,
    wait_for,
    worker_env,
)


def _spawn(env: dict[str, str], tmp_path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *(args or ("run",))],
        env=env,
        cwd=WORKER_IMAGE_DIR,
        stdout=open(tmp_path / "worker.out", "w"),
        stderr=open(tmp_path / "worker.err", "w"),
    )


@pytest.mark.slow
def test_status_table_that_never_answers_does_not_hold_up_jobs(sqs, make_queues, tmp_path):
    """Defect 6: a status table that accepts connections and never answers kept jobs from starting."""
    queues = make_queues(visibility_timeout=5)
    record_dir = tmp_path / "records"
    with BlackHole() as table_endpoint:
        env = worker_env(queues, tmp_path, STATUS_TABLE="jobs", AWS_ENDPOINT_URL_DYNAMODB=table_endpoint.url)
        worker = _spawn(env, tmp_path)
        try:
            ids = {
                send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 0})
                for _ in range(3)
            }
            wait_for(lambda: {j for j, _ in records(record_dir, "done")} == ids, timeout=30)
            wait_for(lambda: sum(queue_counts(sqs, queues.url).values()) == 0, timeout=30)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        finally:
            worker.kill()
        assert table_endpoint.connections >= 1  # the writes really went to the hung endpoint
    assert sorted(a for _, a in records(record_dir, "start")) == [1, 1, 1]
    assert drain_queue(sqs, queues.dlq_url) == []


@pytest.mark.slow
def test_job_released_on_sigterm_goes_back_to_queued(sqs, make_queues, tmp_path, status_table):
    """Defect 10: a job handed back during a drain kept the status `running`."""
    name, store = status_table
    queues = make_queues(visibility_timeout=5)
    record_dir = tmp_path / "records"
    job_id = send_job(sqs, queues.url, "test.hang", {"recordDir": str(record_dir), "seconds": 60})
    worker = _spawn(
        worker_env(queues, tmp_path, STATUS_TABLE=name, WORKER_STOP_TIMEOUT_SECONDS="1"), tmp_path
    )
    try:
        wait_for(lambda: (store.get(job_id) or {}).get("status") == "running")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    item = store.get(job_id)
    assert item["status"] == "queued" and item["attempts"] == 1
    assert len(drain_queue(sqs, queues.url)) == 1  # and the message itself is back


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=WORKER_IMAGE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _assert_one_line_exit_2(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.parametrize(
    ("args", "extra", "fragment"),
    [
        (["run"], {"WORKER_HANDLERS": "no_such_handlers"}, "no_such_handlers"),
        (["run"], {"STATUS_TTL_DAYS": "thirty"}, "STATUS_TTL_DAYS"),
        (["health"], {"HEALTH_MAX_AGE_SECONDS": "2m"}, "HEALTH_MAX_AGE_SECONDS"),
        (["api"], {"PORT": "http"}, "PORT"),
        (["run-one", "--envelope", "{}"], {"AWS_BATCH_JOB_ATTEMPT": "first"}, "AWS_BATCH_JOB_ATTEMPT"),
        (["run-one", "--envelope-file", "/nonexistent/envelope.json"], {}, "/nonexistent/envelope.json"),
        (["run-one", "--envelope", "{}"], {"WORKER_HANDLERS": "no_such_handlers"}, "no_such_handlers"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(make_queues, tmp_path, args, extra, fragment):
    """Defect 11: each of these crashed with a traceback."""
    env = worker_env(make_queues(), tmp_path, STATUS_TABLE="jobs", **extra)
    _assert_one_line_exit_2(_run(args, env), fragment)


def test_queue_that_does_not_exist_exits_2_with_one_line(sqs, make_queues, tmp_path):
    """Defect 11: a wrong QUEUE_URL retried forever while the health check passed."""
    queues = make_queues()
    sqs.delete_queue(QueueUrl=queues.url)
    _assert_one_line_exit_2(_run(["run"], worker_env(queues, tmp_path)), queues.url)


@pytest.mark.parametrize("visibility_timeout", [0, 1])
def test_visibility_timeout_too_short_for_any_job_is_refused(make_queues, tmp_path, visibility_timeout):
    """Defect 11: no heartbeat can keep a message invisible on a 0-1 s visibility timeout."""
    queues = make_queues(visibility_timeout=visibility_timeout)
    _assert_one_line_exit_2(_run(["run"], worker_env(queues, tmp_path)), "VisibilityTimeout")


@pytest.mark.slow
def test_region_from_aws_region_alone(sqs, make_queues, tmp_path):
    """Defect 11: with only AWS_REGION set (boto3 reads AWS_DEFAULT_REGION) the worker could not start."""
    queues = make_queues()
    env = worker_env(queues, tmp_path)
    env.pop("AWS_DEFAULT_REGION", None)
    env["AWS_REGION"] = "us-east-1"
    record_dir = tmp_path / "records"
    job_id = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(record_dir), "seconds": 0})
    worker = _spawn(env, tmp_path)
    try:
        wait_for(lambda: records(record_dir, "done"), timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    assert records(record_dir, "done") == [(job_id, 1)]


def test_run_one_awaits_an_async_handler_and_refuses_deep_nesting(tmp_path):
    """Defects 5 and 4 for the Batch entry point."""
    env = {
        **os.environ,
        "WORKER_HANDLERS": "jobfleet_test_jobs",
        "PYTHONPATH": os.pathsep.join([*CHECKOUT_PATH, str(SUPPORT_DIR)]),
    }
    job_id = uuid.uuid4().hex
    envelope = json.dumps(
        {
            "jobId": job_id,
            "type": "test.async",
            "payload": {"recordDir": str(tmp_path)},
            "submittedAt": "2024-05-01T12:00:00Z",
        }
    )
    assert _run(["run-one", "--envelope", envelope], env).returncode == 0
    assert records(tmp_path, "done") == [(job_id, 1)]
    (tmp_path / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    nested = _run(["run-one", "--envelope-file", str(tmp_path / "nested.json")], env)
    assert nested.returncode == 2 and "Traceback" not in nested.stderr
