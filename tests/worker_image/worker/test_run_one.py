"""`python -m worker run-one` (AWS Batch entry point) as a real subprocess: exit codes and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from worker.policy import backoff_seconds
from worker.run_one import run_one

from tests.worker_image.conftest import CHECKOUT_PATH, SUPPORT_DIR, records


def _envelope(job_type: str, payload: dict, job_id: str | None = None) -> str:
    return json.dumps(
        {
            "jobId": job_id or uuid.uuid4().hex,
            "type": job_type,
            "payload": payload,
            "submittedAt": "2024-05-01T12:00:00Z",
        }
    )


def _run_one(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "WORKER_HANDLERS": "jobfleet_test_jobs",
        "TIER": "batch",
        "PYTHONPATH": os.pathsep.join([*CHECKOUT_PATH, str(SUPPORT_DIR)]),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "run-one", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_success_from_argument_exits_zero_and_records_status(tmp_path, status_table):
    name, store = status_table
    job_id = uuid.uuid4().hex
    result = _run_one(
        ["--envelope", _envelope("test.sleep", {"recordDir": str(tmp_path)}, job_id)],
        STATUS_TABLE=name,
        AWS_BATCH_JOB_ATTEMPT="2",
    )
    assert result.returncode == 0, result.stderr
    assert records(tmp_path, "done") == [(job_id, 2)]
    assert store.get(job_id)["status"] == "succeeded" and store.get(job_id)["attempts"] == 2
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["outcome"] == "succeeded" and outcome["Tier"] == "batch"


def test_envelope_from_file_and_from_env_var(tmp_path):
    path = tmp_path / "envelope.json"
    path.write_text(_envelope("test.sleep", {"recordDir": str(tmp_path)}))
    assert _run_one(["--envelope-file", str(path)]).returncode == 0
    assert _run_one([], JOB_ENVELOPE=_envelope("test.sleep", {"recordDir": str(tmp_path)})).returncode == 0
    assert len(records(tmp_path, "done")) == 2


def test_transient_failure_exits_one_and_records_failed(tmp_path, status_table):
    name, store = status_table
    job_id = uuid.uuid4().hex
    result = _run_one(
        ["--envelope", _envelope("test.fail-until", {"recordDir": str(tmp_path), "succeedOn": 9}, job_id)],
        STATUS_TABLE=name,
    )
    assert result.returncode == 1
    item = store.get(job_id)
    assert item["status"] == "failed" and item["lastError"].startswith("ConnectionError")


def test_a_transient_failure_before_the_last_attempt_asks_batch_to_retry_and_queues_the_job(tmp_path,
                                                                                           status_table):
    """Attempt 1 of 3 fails transiently: exit 3 (the retry strategy retries it), the job waits to run
    again (`queued`, with the attempt and the error), and no terminal event: it is not finished.
    Attempt 3 of 3 fails the same way: exit 1 (Batch ends it; the failure route dead-letters it), `failed`."""
    name, store = status_table
    job_id = uuid.uuid4().hex
    envelope = _envelope("test.fail-until", {"recordDir": str(tmp_path), "succeedOn": 9}, job_id)
    common = {"STATUS_TABLE": name, "JOB_MAX_ATTEMPTS": "3", "AWS_BATCH_JOB_ID": "batch-job-7",
              "WORKER_BACKOFF_BASE_SECONDS": "0"}
    first = _run_one(["--envelope", envelope], AWS_BATCH_JOB_ATTEMPT="1", **common)
    assert first.returncode == 3, first.stderr
    item = store.get(job_id)
    assert (item["status"], item["attempts"]) == ("queued", 1)
    assert item["lastError"].startswith("ConnectionError: downstream unavailable (attempt 1)")
    assert json.loads(first.stdout.splitlines()[-1])["outcome"] == "failed"

    last = _run_one(["--envelope", envelope], AWS_BATCH_JOB_ATTEMPT="3", **common)
    assert last.returncode == 1, last.stderr
    item = store.get(job_id)
    assert (item["status"], item["attempts"]) == ("failed", 3)
    assert item["lastError"].startswith("ConnectionError: downstream unavailable (attempt 3)")


def test_a_permanent_failure_exits_2_on_any_attempt(tmp_path, status_table):
    name, store = status_table
    job_id = uuid.uuid4().hex
    result = _run_one(["--envelope", _envelope("test.permanent", {"recordDir": str(tmp_path)}, job_id)],
                      STATUS_TABLE=name, JOB_MAX_ATTEMPTS="3", AWS_BATCH_JOB_ATTEMPT="1")
    assert result.returncode == 2
    assert store.get(job_id)["status"] == "dead-lettered"


def test_a_retry_attempt_backs_off_first_with_the_workers_policy():
    """Batch retries at once; run-one waits the worker's backoff for the attempts so far, capped at
    300 s and a tenth of the job's time; a first attempt does not wait."""
    envelope = _envelope("not.registered", {})
    waits: list[float] = []

    def run(attempt: int, max_seconds: str = "14400") -> None:
        env = {"AWS_BATCH_JOB_ATTEMPT": str(attempt), "JOB_MAX_SECONDS": max_seconds,
               "JOB_MAX_ATTEMPTS": "10"}
        assert run_one(envelope, None, env=env, sleep=waits.append, jitter=lambda: 0.5) == 2

    run(1)
    assert waits == []
    run(3)
    assert waits == [backoff_seconds(2, 2.0, 300, 0.5)] == [3]
    run(10)
    assert waits[-1] == backoff_seconds(9, 2.0, 300, 0.5) == 225
    run(10, max_seconds="600")
    assert waits[-1] == backoff_seconds(9, 2.0, 60, 0.5) == 45


def test_timeout_exits_one_instead_of_hanging(tmp_path):
    result = _run_one(
        ["--envelope", _envelope("test.hang", {"recordDir": str(tmp_path), "seconds": 60})],
        JOB_TIMEOUTS='{"test.hang": 1}',
    )
    assert result.returncode == 1 and "JobTimeout" in result.stderr


@pytest.mark.parametrize(
    "envelope",
    [
        "{not json",
        _envelope("no.such.type", {}),
        None,
    ],
)
def test_permanent_or_invalid_exits_two(tmp_path, envelope):
    args = [] if envelope is None else ["--envelope", envelope]
    env = {} if envelope is not None else {"JOB_ENVELOPE": ""}
    assert _run_one(args, **env).returncode == 2


def test_permanent_error_from_handler_exits_two(tmp_path):
    assert _run_one(["--envelope", _envelope("test.permanent", {"recordDir": str(tmp_path)})]).returncode == 2


def test_run_one_without_status_table_needs_no_aws_region(tmp_path, monkeypatch):
    """Without STATUS_TABLE nothing talks to DynamoDB, so no region is needed; it used to build the
    DynamoDB resource anyway and die with NoRegionError's traceback (exit 1) outside AWS."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "STATUS_TABLE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    result = _run_one(["--envelope", _envelope("test.permanent", {"recordDir": str(tmp_path)})])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_run_one_with_a_status_table_but_no_region_says_so_in_one_line(tmp_path, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    result = _run_one(["--envelope", _envelope("test.permanent", {"recordDir": str(tmp_path)})],
                      STATUS_TABLE="jobs")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "configuration error: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION"]
