"""The reference job API against a real moto server (SQS + DynamoDB over HTTP), app served in-process."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from fastapi.testclient import TestClient
from worker.api import IDEMPOTENCY_PREFIX, ApiSettings, create_app

from jobfleet_contract.environment import ConfigError
from jobfleet_contract.status import JobStatusStore
from tests.worker_image.conftest import dead_endpoint

REGION = "us-east-1"
JOB_TYPES = {"onboarding": "critical", "report": "standard", "analysis": "batch"}


@pytest.fixture()
def env(sqs, jobs_table):
    """Fresh queues per tier and a fresh status table; returns (settings factory, sqs client)."""
    suffix = uuid.uuid4().hex[:8]
    queues = {tier: sqs.create_queue(QueueName=f"api-{tier}-{suffix}")["QueueUrl"]
              for tier in ("critical", "standard", "batch")}
    table = jobs_table.name

    def settings(**overrides) -> ApiSettings:
        values = {"tier_queues": queues, "job_types": JOB_TYPES, "status_table": table,
                  "max_payload_bytes": 65536}
        values.update(overrides)
        return ApiSettings(**values)

    return settings


def client_for(settings: ApiSettings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def queued_bodies(sqs, queue_url: str) -> list[dict]:
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                    WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return found
        found.extend(json.loads(m["Body"]) for m in batch)


def all_queued(sqs, settings: ApiSettings) -> list[dict]:
    return [body for url in settings.tier_queues.values() for body in queued_bodies(sqs, url)]


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("reason"), str) and body["reason"], body
    if error is not None:
        assert body["error"] == error, body
    return body


# --- submitting ------


def test_submit_sends_the_envelope_to_the_tier_queue_and_records_queued(env, sqs):
    settings = env()
    client = client_for(settings)
    response = client.post("/jobs", json={"type": "onboarding", "payload": {"userId": "u-1"}})
    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["jobId"]
    assert accepted == {"jobId": job_id, "tier": "critical", "statusUrl": f"/jobs/{job_id}"}
    assert response.headers["location"] == f"/jobs/{job_id}"

    (body,) = queued_bodies(sqs, settings.tier_queues["critical"])
    assert body["jobId"] == job_id and body["type"] == "onboarding" and body["payload"] == {"userId": "u-1"}
    assert body["submittedAt"].endswith("Z")
    assert queued_bodies(sqs, settings.tier_queues["standard"]) == []

    status = client.get(accepted["statusUrl"])
    assert status.status_code == 200
    assert status.json() | {"updatedAt": None} == {
        "jobId": job_id, "status": "queued", "type": "onboarding", "tier": "critical", "attempts": 0,
        "submittedAt": body["submittedAt"], "startedAt": None, "finishedAt": None, "updatedAt": None,
        "lastError": None,
    }


@pytest.mark.parametrize(("job_type", "tier"), [("report", "standard"), ("analysis", "batch")])
def test_each_type_goes_to_its_own_tier(env, sqs, job_type, tier):
    settings = env()
    response = client_for(settings).post("/jobs", json={"type": job_type, "payload": {}})
    assert response.status_code == 202 and response.json()["tier"] == tier
    assert [b["type"] for b in queued_bodies(sqs, settings.tier_queues[tier])] == [job_type]


# --- validation ------


@pytest.mark.parametrize(
    ("body", "error", "reason_part"),
    [
        ({"type": "mining", "payload": {}}, "unknown-job-type", "unknown job type 'mining'"),
        ({"type": "report", "payload": [1, 2]}, "invalid-request", "payload"),
        ({"type": "report", "payload": "text"}, "invalid-request", "payload"),
        ({"type": "report", "payload": None}, "invalid-request", "payload"),
        ({"payload": {}}, "invalid-request", "type"),
        ({"type": "report"}, "invalid-request", "payload"),
        ({"type": 7, "payload": {}}, "invalid-request", "type"),
        ({"type": "report", "payload": {}, "priority": 1}, "invalid-request", "priority"),
        ({"type": "report", "payload": {}, "idempotencyKey": ""}, "invalid-request", "idempotencyKey"),
        ({"type": "report", "payload": {}, "idempotencyKey": "k" * 256}, "invalid-request", "idempotencyKey"),
        ([{"type": "report", "payload": {}}], "invalid-request", "body"),
    ],
)
def test_invalid_requests_are_4xx_json_with_a_reason_and_send_nothing(env, sqs, body, error, reason_part):
    settings = env()
    response = client_for(settings).post("/jobs", json=body)
    assert response.status_code == 422
    assert reason_part in assert_error(response, 422, error)["reason"]
    assert all_queued(sqs, settings) == []


def test_malformed_json_is_400_with_a_reason(env, sqs):
    settings = env()
    response = client_for(settings).post("/jobs", content=b'{"type": "report", "payload": {',
                                         headers={"content-type": "application/json"})
    assert "not valid JSON" in assert_error(response, 400, "malformed-json")["reason"]
    assert all_queued(sqs, settings) == []


def test_nan_in_payload_is_rejected(env, sqs):
    settings = env()
    response = client_for(settings).post("/jobs", content=b'{"type": "report", "payload": {"x": NaN}}',
                                         headers={"content-type": "application/json"})
    assert_error(response, 422)
    assert all_queued(sqs, settings) == []


def test_payload_size_limit_counts_the_serialized_payload(env, sqs):
    settings = env(max_payload_bytes=100)
    client = client_for(settings)
    filler = 100 - len(json.dumps({"a": ""}))
    at_limit = {"a": "x" * filler}
    assert len(json.dumps(at_limit)) == 100
    assert client.post("/jobs", json={"type": "report", "payload": at_limit}).status_code == 202
    over = {"a": "x" * (filler + 1)}
    reason = assert_error(client.post("/jobs", json={"type": "report", "payload": over}), 413,
                          "payload-too-large")["reason"]
    assert "101 bytes" in reason and "100" in reason
    # Non-ASCII counts as sent (escaped), not as typed.
    escaped = {"a": "é" * (filler // 6 + 1)}
    assert_error(client.post("/jobs", json={"type": "report", "payload": escaped}), 413)
    # A body far beyond the limit is refused before it is parsed.
    huge = {"type": "report", "payload": {"a": "x" * 100_000}}
    assert "request body" in assert_error(client.post("/jobs", json=huge), 413)["reason"]
    assert len(all_queued(sqs, settings)) == 1


def test_a_tier_limit_tightens_the_payload_limit_for_its_job_types_only(env, sqs):
    settings = env(max_payload_bytes=1000, tier_max_payload_bytes={"batch": 100})
    client = client_for(settings)
    payload = {"a": "x" * 200}
    assert client.post("/jobs", json={"type": "report", "payload": payload}).status_code == 202
    reason = assert_error(client.post("/jobs", json={"type": "analysis", "payload": payload}), 413,
                          "payload-too-large")["reason"]
    assert "at most 100" in reason and "'analysis'" in reason
    assert len(all_queued(sqs, settings)) == 1


def test_tier_limits_from_the_environment():
    base = {"TIER_QUEUES": '{"batch": "http://q"}', "JOB_TYPES": '{"analysis": "batch"}'}
    settings = ApiSettings.from_env({**base, "TIER_MAX_PAYLOAD_BYTES": '{"batch": 14336}'})
    assert settings.payload_limit("batch") == 14336
    with pytest.raises(ConfigError, match="TIER_MAX_PAYLOAD_BYTES"):
        ApiSettings.from_env({**base, "TIER_MAX_PAYLOAD_BYTES": '{"batch": "big"}'})


# --- idempotency ------


@pytest.mark.parametrize("with_table", [True, False], ids=["dynamodb", "in-memory"])
def test_same_idempotency_key_returns_the_same_job_and_sends_once(env, sqs, with_table):
    settings = env() if with_table else env(status_table=None)
    client = client_for(settings)
    request = {"type": "report", "payload": {"rows": 10}, "idempotencyKey": "order-42"}
    first = client.post("/jobs", json=request)
    second = client.post("/jobs", json=request)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    other = client.post("/jobs", json={**request, "idempotencyKey": "order-43"})
    assert other.status_code == 202 and other.json()["jobId"] != first.json()["jobId"]
    no_key = client.post("/jobs", json={"type": "report", "payload": {"rows": 10}})
    assert no_key.json()["jobId"] not in (first.json()["jobId"], other.json()["jobId"])
    sent = queued_bodies(sqs, settings.tier_queues["standard"])
    assert sorted(b["jobId"] for b in sent) == sorted(
        [first.json()["jobId"], other.json()["jobId"], no_key.json()["jobId"]])

    changed = client.post("/jobs", json={**request, "payload": {"rows": 11}})
    assert_error(changed, 422, "idempotency-key-reused")
    assert queued_bodies(sqs, settings.tier_queues["standard"]) == []


def test_idempotency_records_are_not_jobs(env):
    settings = env()
    client = client_for(settings)
    client.post("/jobs", json={"type": "report", "payload": {}, "idempotencyKey": "k1"})
    assert_error(client.get(f"/jobs/{IDEMPOTENCY_PREFIX}k1"), 404, "not-found")


def test_an_expired_idempotency_record_no_longer_deduplicates(env, moto_endpoint, sqs):
    settings = env()
    client = client_for(settings)
    request = {"type": "report", "payload": {}, "idempotencyKey": "old"}
    first = client.post("/jobs", json=request).json()["jobId"]
    # DynamoDB's TTL deletes lazily: a record past expiresAt may still be there and must not count.
    table = boto3.resource("dynamodb", region_name=REGION, endpoint_url=moto_endpoint).Table(
        settings.status_table)
    table.update_item(Key={"jobId": f"{IDEMPOTENCY_PREFIX}old"}, UpdateExpression="SET expiresAt = :t",
                      ExpressionAttributeValues={":t": 1})
    second = client.post("/jobs", json=request).json()["jobId"]
    assert second != first
    assert len(queued_bodies(sqs, settings.tier_queues["standard"])) == 2


# --- status lookup ------


def test_status_follows_the_workers_transitions(env, moto_endpoint):
    settings = env()
    client = client_for(settings)
    job_id = client.post("/jobs", json={"type": "report", "payload": {}}).json()["jobId"]
    table = boto3.resource("dynamodb", region_name=REGION, endpoint_url=moto_endpoint).Table(
        settings.status_table)
    worker_store = JobStatusStore(table, tier="standard")

    worker_store.mark_running(job_id, "report", 1)
    running = client.get(f"/jobs/{job_id}").json()
    assert running["status"] == "running" and running["attempts"] == 1 and running["startedAt"]

    worker_store.mark_failed(job_id, "report", 1, "ConnectionError: downstream unavailable")
    failed = client.get(f"/jobs/{job_id}").json()
    assert failed["status"] == "failed" and failed["lastError"] == "ConnectionError: downstream unavailable"

    worker_store.mark_running(job_id, "report", 2)
    worker_store.mark_succeeded(job_id, "report", 2)
    done = client.get(f"/jobs/{job_id}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["finishedAt"]
    assert done["submittedAt"] and done["type"] == "report" and done["tier"] == "standard"

    other = client.post("/jobs", json={"type": "report", "payload": {}}).json()["jobId"]
    worker_store.mark_dead_lettered(other, "report", 1, "PermanentError: malformed")
    assert client.get(f"/jobs/{other}").json()["status"] == "dead-lettered"


def test_unknown_job_is_404_json(env):
    body = assert_error(client_for(env()).get(f"/jobs/{uuid.uuid4()}"), 404, "not-found")
    assert "no job" in body["reason"]


def test_status_without_a_table_is_501_json(env):
    assert_error(client_for(env(status_table=None)).get("/jobs/x"), 501, "status-disabled")


# --- SQS unreachable ------


def test_sqs_unreachable_is_503_with_retry_after_and_nothing_recorded(env, sqs, monkeypatch):
    settings = env()
    good = client_for(settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", dead_endpoint())  # DynamoDB stays reachable
    broken = client_for(settings)
    request = {"type": "onboarding", "payload": {"userId": "u-9"}, "idempotencyKey": "retry-me"}
    response = broken.post("/jobs", json=request)
    body = assert_error(response, 503, "unavailable")
    assert "SQS" in body["reason"] and "not accepted" in body["reason"]
    assert int(response.headers["retry-after"]) > 0
    assert all_queued(sqs, settings) == []

    # The key was released and no status record claims a queued job: a retry goes through, once.
    retried = good.post("/jobs", json=request)
    assert retried.status_code == 202
    assert [b["jobId"] for b in queued_bodies(sqs, settings.tier_queues["critical"])] == [
        retried.json()["jobId"]]
    assert good.post("/jobs", json=request).json()["jobId"] == retried.json()["jobId"]


def test_sqs_unreachable_without_a_table_is_503(env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", dead_endpoint())
    response = client_for(env(status_table=None)).post("/jobs", json={"type": "report", "payload": {}})
    assert_error(response, 503, "unavailable")
    assert "retry-after" in response.headers


def test_the_failed_send_leaves_no_status_record(env, moto_endpoint, monkeypatch):
    settings = env()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", dead_endpoint())
    assert client_for(settings).post("/jobs", json={"type": "report", "payload": {}}).status_code == 503
    table = boto3.resource("dynamodb", region_name=REGION, endpoint_url=moto_endpoint).Table(
        settings.status_table)
    assert table.scan()["Items"] == []


def test_status_table_unreachable_is_503_and_nothing_is_sent(env, sqs, monkeypatch):
    settings = env()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dead_endpoint())
    client = client_for(settings)
    assert_error(client.post("/jobs", json={"type": "report", "payload": {}}), 503, "unavailable")
    assert_error(client.get("/jobs/abc"), 503, "unavailable")
    assert all_queued(sqs, settings) == []


# --- the rest of the surface ------


def test_healthz_openapi_and_json_errors_for_unknown_routes(env):
    client = client_for(env())
    assert client.get("/healthz").json() == {"status": "ok", "tiers": ["batch", "critical", "standard"]}
    schema = client.get("/openapi.json").json()
    assert {"/jobs", "/jobs/{jobId}", "/healthz"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["JobRequest"]["properties"]["type"]["enum"] == sorted(JOB_TYPES)
    assert schema["components"]["schemas"]["JobRequest"]["additionalProperties"] is False
    assert_error(client.get("/nope"), 404, "not-found")
    assert_error(client.delete("/jobs"), 405, "method-not-allowed")


def test_settings_from_the_environment():
    env = {"TIER_QUEUES": json.dumps({"critical": "http://q/c"}), "JOB_TYPES": json.dumps({"a": "critical"}),
           "STATUS_TABLE": "jobfleet-dev-jobs", "MAX_PAYLOAD_BYTES": "1000", "PORT": "8080"}
    settings = ApiSettings.from_env(env)
    assert settings == ApiSettings({"critical": "http://q/c"}, {"a": "critical"}, "jobfleet-dev-jobs", 1000)
    assert ApiSettings.from_env({**env, "STATUS_TABLE": "", "MAX_PAYLOAD_BYTES": ""}).status_table is None

    with pytest.raises(ConfigError, match="TIER_QUEUES"):
        ApiSettings.from_env({k: v for k, v in env.items() if k != "TIER_QUEUES"})
    with pytest.raises(ConfigError, match="JOB_TYPES is not JSON"):
        ApiSettings.from_env({**env, "JOB_TYPES": "{"})
    with pytest.raises(ConfigError, match="without a queue in TIER_QUEUES: batch"):
        ApiSettings.from_env({**env, "JOB_TYPES": json.dumps({"a": "critical", "b": "batch"})})
    with pytest.raises(ConfigError, match="MAX_PAYLOAD_BYTES"):
        ApiSettings.from_env({**env, "MAX_PAYLOAD_BYTES": "0"})
