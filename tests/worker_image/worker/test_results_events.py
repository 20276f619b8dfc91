"""Job results in S3 and "Job State Change" events on EventBridge, against a real moto server.

EventBridge is proven the way a subscriber would see it: a rule on the default bus routes the
worker's events to an SQS queue the test reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass

import boto3
import pytest
from fastapi.testclient import TestClient
from worker.api import ApiSettings, create_app
from worker.completion import Completion
from worker.events import DETAIL_TYPE, EVENT_SOURCE, EventPublisher
from worker.results import ResultStore, result_key

from jobfleet_contract.status import JobStatusStore
from tests.support.status_table import new_status_table
from tests.worker_image.conftest import SUPPORT_DIR, WORKER_IMAGE_DIR, send_job, wait_for

REGION = "us-east-1"


@dataclass
class Sinks:
    bucket: str
    environment: str
    events_queue: str
    table: str
    sqs: object
    s3: object

    def completion(self, tier: str = "test") -> Completion:
        return Completion(ResultStore(self.s3, self.bucket),
                          EventPublisher(boto3.client("events", region_name=REGION), "default",
                                         self.environment), tier)

    def env(self) -> dict[str, str]:
        return {"RESULTS_BUCKET": self.bucket, "JOB_EVENT_BUS": "default",
                "JOBFLEET_ENVIRONMENT": self.environment, "STATUS_TABLE": self.table}

    def events(self, count: int) -> list[dict]:
        found: list[dict] = []

        def enough() -> bool:
            for message in self.sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=1).get("Messages", []):
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.events_queue, ReceiptHandle=message["ReceiptHandle"])
            return len(found) >= count

        wait_for(enough, 30)
        return found

    def stored(self, job_id: str) -> object:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=result_key(job_id))["Body"].read())


@pytest.fixture()
def sinks(moto_endpoint, sqs) -> Sinks:
    suffix = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"results-{suffix}"
    s3.create_bucket(Bucket=bucket)
    environment = f"test-{suffix}"  # each test's rule matches only its own events
    queue = sqs.create_queue(QueueName=f"events-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name=f"jobs-{suffix}", EventPattern=json.dumps(
        {"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE], "detail": {"environment": [environment]}}))
    events.put_targets(Rule=f"jobs-{suffix}", Targets=[{"Id": "queue", "Arn": arn}])
    table = new_status_table(moto_endpoint, "status").name
    return Sinks(bucket, environment, queue, table, sqs, s3)


def status_store(sinks: Sinks, tier: str = "test") -> JobStatusStore:
    return JobStatusStore(boto3.resource("dynamodb", region_name=REGION).Table(sinks.table), tier)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_results_are_stored_recorded_and_announced(sinks, make_queues, start_worker, tmp_path, isolation):
    queues = make_queues()
    store = status_store(sinks)
    worker = start_worker(queues, completion=sinks.completion(), isolation=isolation, status_store=store)
    returned = send_job(sinks.sqs, queues.url, "test.result", {"result": {"pages": 3, "ok": True}})
    via_ctx = send_job(sinks.sqs, queues.url, "test.result", {"result": [1, 2], "viaContext": True})
    poison = send_job(sinks.sqs, queues.url, "test.permanent", {"recordDir": str(tmp_path / "rec")})
    events = {e["detail"]["jobId"]: e for e in sinks.events(3)}
    assert worker.stop() == 0

    assert sinks.stored(returned) == {"pages": 3, "ok": True}
    assert sinks.stored(via_ctx) == [1, 2]
    record = store.get(returned)
    assert record["status"] == "succeeded"
    assert record["result"] == {"bucket": sinks.bucket, "key": f"results/{returned}.json",
                                "bytes": len('{"pages":3,"ok":true}')}
    succeeded = events[returned]
    assert succeeded["source"] == "jobfleet" and succeeded["detail-type"] == "Job State Change"
    detail = succeeded["detail"]
    assert detail["state"] == "succeeded" and detail["type"] == "test.result" and detail["tier"] == "test"
    assert detail["result"]["key"] == f"results/{returned}.json" and detail["error"] is None
    assert detail["environment"] == sinks.environment and detail["version"] == "1"
    dead = events[poison]["detail"]
    assert dead["state"] == "dead-lettered" and dead["result"] is None
    assert dead["error"] == "PermanentError: customer record is malformed"


def test_a_result_json_cannot_carry_is_a_permanent_failure(sinks, make_queues, start_worker):
    queues = make_queues()
    worker = start_worker(queues, completion=sinks.completion())
    job_id = send_job(sinks.sqs, queues.url, "test.unserializable-result", {})
    (event,) = sinks.events(1)
    worker.stop()
    assert event["detail"]["jobId"] == job_id and event["detail"]["state"] == "dead-lettered"
    assert "not JSON-serializable" in event["detail"]["error"]


def test_no_results_bucket_means_no_result_but_the_job_succeeds(sinks, make_queues, start_worker):
    queues = make_queues()
    worker = start_worker(queues, completion=Completion(None, sinks.completion().events, "test"))
    job_id = send_job(sinks.sqs, queues.url, "test.result", {"result": {"x": 1}})
    (event,) = sinks.events(1)
    worker.stop()
    assert event["detail"]["jobId"] == job_id
    assert event["detail"]["state"] == "succeeded" and event["detail"]["result"] is None


def _run_one(envelope: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WORKER_HANDLERS": "jobfleet_test_jobs", "TIER": "batch",
                "PYTHONPATH": os.pathsep.join([str(WORKER_IMAGE_DIR), str(SUPPORT_DIR)]), **env}
    return subprocess.run([sys.executable, "-m", "worker", "run-one", "--envelope", json.dumps(envelope)],
                          env=full_env, capture_output=True, text=True, timeout=60, check=False)


def test_run_one_stores_its_result_and_publishes_success_and_failure(sinks, tmp_path):
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    base = {"submittedAt": "2024-05-01T12:00:00Z"}
    done = _run_one({**base, "jobId": ok, "type": "test.result", "payload": {"result": {"rows": 7}}},
                    sinks.env())
    assert done.returncode == 0, done.stderr
    failed = _run_one({**base, "jobId": bad, "type": "test.flaky", "payload": {"recordDir": str(tmp_path)}},
                      sinks.env())
    assert failed.returncode == 1, failed.stderr
    events = {e["detail"]["jobId"]: e["detail"] for e in sinks.events(2)}
    assert sinks.stored(ok) == {"rows": 7}
    assert events[ok]["state"] == "succeeded" and events[ok]["tier"] == "batch"
    assert events[ok]["result"]["key"] == f"results/{ok}.json"
    assert events[bad]["state"] == "failed" and events[bad]["error"].startswith("TimeoutError")
    assert status_store(sinks, "batch").get(ok)["result"]["bucket"] == sinks.bucket


def _api(sinks: Sinks, sqs, **settings) -> TestClient:
    queue = sqs.create_queue(QueueName=f"api-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    app = create_app(ApiSettings(tier_queues={"t": queue}, job_types={"test.result": "t"},
                                 status_table=sinks.table, **settings))
    return TestClient(app, raise_server_exceptions=False)


def test_api_returns_a_small_result_inline_and_a_large_one_as_a_presigned_url(sinks, sqs):
    store = status_store(sinks)
    small, large = uuid.uuid4().hex, uuid.uuid4().hex
    results = ResultStore(sinks.s3, sinks.bucket)
    big = {"rows": ["x" * 100] * 20}
    for job_id, value in ((small, {"total": 42}), (large, big)):
        location = results.put(job_id, json.dumps(value))
        store.mark_running(job_id, "test.result", 1)
        store.mark_succeeded(job_id, "test.result", 1, result=location)
    client = _api(sinks, sqs, results_inline_max_bytes=1024, results_url_seconds=60)

    inline = client.get(f"/jobs/{small}").json()
    assert inline["result"] == {"total": 42} and "resultUrl" not in inline
    assert inline["resultLocation"] == f"s3://{sinks.bucket}/results/{small}.json"

    linked = client.get(f"/jobs/{large}").json()
    assert "result" not in linked and linked["resultBytes"] > 1024
    assert "Expires=" in linked["resultUrl"] or "X-Amz-Expires=60" in linked["resultUrl"]
    with urllib.request.urlopen(linked["resultUrl"], timeout=10) as response:
        assert json.loads(response.read()) == big


def test_api_after_the_lifecycle_expired_a_result_still_says_where_it_was(sinks, sqs):
    store = status_store(sinks)
    job_id = uuid.uuid4().hex
    location = ResultStore(sinks.s3, sinks.bucket).put(job_id, "{}")
    store.mark_succeeded(job_id, "test.result", 1, result=location)
    sinks.s3.delete_object(Bucket=sinks.bucket, Key=location["key"])
    body = _api(sinks, sqs).get(f"/jobs/{job_id}").json()
    assert body["status"] == "succeeded" and "result" not in body
    assert body["resultLocation"] == f"s3://{sinks.bucket}/results/{job_id}.json"


def test_api_settings_read_result_limits_and_refuse_bad_ones():
    from worker.config import ConfigError

    base = {"TIER_QUEUES": '{"t": "q"}', "JOB_TYPES": '{"a": "t"}'}
    settings = ApiSettings.from_env({**base, "RESULTS_INLINE_MAX_BYTES": "100", "RESULTS_URL_SECONDS": "30"})
    assert (settings.results_inline_max_bytes, settings.results_url_seconds) == (100, 30)
    with pytest.raises(ConfigError, match="RESULTS_URL_SECONDS"):
        ApiSettings.from_env({**base, "RESULTS_URL_SECONDS": "86400"})
