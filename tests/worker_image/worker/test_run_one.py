"""`python -m worker run-one` (AWS Batch entry point) as a real subprocess: exit codes and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

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
