"""API edge cases: a chunked body over the limit against a real uvicorn server, the canonical
idempotency fingerprint, a status read while the table is down, and the declared response models."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from worker.api import ApiSettings, JobAccepted, JobRequest, JobStatus, create_app

from jobfleet_tools.local.processes import free_port
from tests.worker_image.conftest import WORKER_IMAGE_DIR, dead_endpoint, served_api

REGION = "us-east-1"
JOB_TYPES = {"report": "standard"}


@pytest.fixture()
def queue_url(sqs) -> str:
    return sqs.create_queue(QueueName=f"edges-{uuid.uuid4().hex[:8]}")["QueueUrl"]


@pytest.fixture()
def table(jobs_table) -> str:
    return jobs_table.name


@pytest.fixture()
def api_server(moto_endpoint, queue_url) -> Iterator[str]:
    """`python -m worker api` as a real process (uvicorn) with a 1,000-byte payload limit."""
    env = {**os.environ, "PORT": str(free_port()), "TIER_QUEUES": json.dumps({"standard": queue_url}),
           "JOB_TYPES": json.dumps(JOB_TYPES), "MAX_PAYLOAD_BYTES": "1000"}
    env.pop("STATUS_TABLE", None)
    with served_api(env, WORKER_IMAGE_DIR) as url:
        yield url


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(api_server):
    # No Content-Length: the body arrives in 64 KiB chunks, 64 MiB in all unless the server stops.
    chunk, chunks = b" " * 65536, 1024
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        yield b'{"type": "report", "payload": {"pad": "'
        for _ in range(chunks):
            sent["bytes"] += len(chunk)
            yield chunk
        yield b'"}}'

    response = httpx.post(f"{api_server}/jobs", content=body(), timeout=60,
                          headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "payload-too-large"
    # The server answered and closed long before the client could send the whole body.
    assert sent["bytes"] < len(chunk) * chunks // 4


def test_a_chunked_body_within_the_limit_is_accepted(api_server):
    def body() -> Iterator[bytes]:
        yield b'{"type": "report", '
        yield b'"payload": {"n": 1}}'

    response = httpx.post(f"{api_server}/jobs", content=body(), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text


def test_the_idempotency_fingerprint_ignores_key_order(moto_endpoint, queue_url, table):
    client = TestClient(create_app(ApiSettings({"standard": queue_url}, JOB_TYPES, table)))
    first = client.post("/jobs", json={"type": "report", "payload": {"a": 1, "b": {"x": 1, "y": 2}},
                                       "idempotencyKey": "same"})
    again = client.post("/jobs", json={"type": "report", "payload": {"b": {"y": 2, "x": 1}, "a": 1},
                                       "idempotencyKey": "same"})

    assert (first.status_code, again.status_code) == (202, 202), again.text
    assert again.json()["jobId"] == first.json()["jobId"]
    assert again.headers["idempotent-replayed"] == "true"


def test_a_read_while_the_status_table_is_down_says_so(queue_url, table, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dead_endpoint())
    client = TestClient(create_app(ApiSettings({"standard": queue_url}, JOB_TYPES, table)))

    response = client.get("/jobs/some-job")

    assert response.status_code == 503
    reason = response.json()["reason"]
    assert "status cannot be read" in reason and "not accepted" not in reason


def test_the_response_models_are_declared_in_python_names_with_camel_case_on_the_wire(
        moto_endpoint, queue_url, table):
    assert set(JobStatus.model_fields) >= {"job_id", "submitted_at", "last_error"}
    assert JobAccepted(job_id="j", tier="t", status_url="/jobs/j").model_dump() == {
        "jobId": "j", "tier": "t", "statusUrl": "/jobs/j"}
    client = TestClient(create_app(ApiSettings({"standard": queue_url}, JOB_TYPES, table)))
    accepted = client.post("/jobs", json={"type": "report", "payload": {}})
    assert set(accepted.json()) == {"jobId", "tier", "statusUrl"}
    status = client.get(accepted.json()["statusUrl"]).json()
    assert status["jobId"] == accepted.json()["jobId"] and status["status"] == "queued"
    assert "job_id" not in status
    # Requests take the wire names only.
    refused = client.post("/jobs", json={"type": "report", "payload": {}, "idempotency_key": "k"})
    assert refused.status_code == 422
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schema["JobStatus"]["properties"]) >= {"jobId", "submittedAt", "lastError"}
    assert "idempotencyKey" in schema["JobRequest"]["properties"]
    assert JobRequest.model_fields["idempotency_key"].alias == "idempotencyKey"


def test_a_status_record_that_breaks_the_model_is_not_served_unvalidated(moto_endpoint, queue_url, table):
    # Responses are validated on the way out: a corrupt record is a 500 with a JSON reason.
    boto3.resource("dynamodb", region_name=REGION, endpoint_url=moto_endpoint).Table(table).put_item(
        Item={"jobId": "corrupt", "status": "queued", "attempts": -3})
    client = TestClient(create_app(ApiSettings({"standard": queue_url}, JOB_TYPES, table)),
                        raise_server_exceptions=False)
    response = client.get("/jobs/corrupt")
    assert response.status_code == 500
    assert response.json()["error"] == "internal"
