"""The producer-side client: its envelopes are what the worker accepts; its CLI fails with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from worker.producer import build_envelope, send_job

from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.errors import InvalidEnvelope
from tests.worker_image.conftest import WORKER_IMAGE_DIR, drain_queue


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(WORKER_IMAGE_DIR)}
    return subprocess.run([sys.executable, "-m", "worker.producer", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_send_job_puts_a_valid_envelope_on_the_queue(sqs):
    queue = sqs.create_queue(QueueName=f"producer-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    job_id = send_job(sqs, queue, "report", {"customerId": "c-1"})
    (message,) = drain_queue(sqs, queue)
    envelope = parse_envelope(message["Body"])
    assert (envelope.job_id, envelope.job_type, envelope.payload) == (job_id, "report", {"customerId": "c-1"})


@pytest.mark.parametrize(("job_type", "payload", "reason"), [
    ("", {}, "type must be a non-empty string"),
    ("report", None, "payload must be a JSON object"),
    ("report", {"blob": "x" * 262_144}, "SQS takes at most"),
])
def test_build_envelope_refuses_what_a_worker_would_dead_letter(job_type, payload, reason):
    with pytest.raises(InvalidEnvelope, match=reason):
        build_envelope(job_type, payload)


def test_cli_sends_by_queue_name_and_prints_the_job_id(sqs, moto_endpoint, tmp_path):
    name = f"jobfleet-dev-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"userId": "u-1"}')
    result = _cli("--queue-name", name, "--type", "onboarding", "--payload-file", str(payload_file),
                  "--job-id", "legacy-42")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "legacy-42"
    (message,) = drain_queue(sqs, queue)
    assert json.loads(message["Body"])["payload"] == {"userId": "u-1"}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--queue-url", "q", "--type", "report", "--payload", "{not json"], 2, "error: Expecting property"),
    (["--queue-url", "q", "--type", "report", "--payload", "[1]"], 2, "error: payload must be a JSON object"),
    (["--queue-name", "no-such-queue-i13", "--type", "report"], 1, "error: not sent:"),
])
def test_cli_bad_input_is_one_line(moto_endpoint, args, code, message):
    result = _cli(*args)
    assert result.returncode == code
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
