"""The batch feed's submitter against moto's Batch API (a real moto server, Docker-less Batch).

The envelope reaches the job as the string the producer sent, byte for byte; a failed SubmitJob
leaves exactly that message for SQS to retry.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import boto3
import pytest
from batch_submit import handler as submitter

from jobfleet_contract.environment import ConfigError

REGION = "us-east-1"


@pytest.fixture(scope="module")
def batch(moto_endpoint):
    """A job queue and the worker's job definition in moto, with Batch's Docker runner off."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"batch": {"use_docker": False}}).encode())
    urllib.request.urlopen(request, timeout=10).close()
    client = boto3.client("batch", region_name=REGION, endpoint_url=moto_endpoint)
    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_endpoint)
    role = iam.create_role(RoleName=f"batch-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")
    environment = client.create_compute_environment(
        computeEnvironmentName=f"ce-{uuid.uuid4().hex[:8]}", type="UNMANAGED", state="ENABLED",
        serviceRole=role["Role"]["Arn"])
    queue = client.create_job_queue(
        jobQueueName=f"jq-{uuid.uuid4().hex[:8]}", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1,
                                  "computeEnvironment": environment["computeEnvironmentArn"]}])
    definition = client.register_job_definition(
        jobDefinitionName=f"jd-{uuid.uuid4().hex[:8]}", type="container",
        containerProperties={"image": "jobfleet-worker", "vcpus": 1, "memory": 512,
                             "command": ["python", "-m", "worker", "run-one", "--envelope",
                                         "Ref::envelope"]})
    submitter._client = None  # a fresh client for this server's endpoint
    return client, {"JOB_QUEUE": queue["jobQueueArn"], "JOB_DEFINITION": definition["jobDefinitionArn"],
                    "JOB_NAME": "jobfleet-test-batch"}


def _record(body: str, redrive_count: str | None = None) -> dict:
    attributes = ({"jobfleet.redriveCount": {"stringValue": redrive_count, "dataType": "Number",
                                             "stringListValues": [], "binaryListValues": []}}
                  if redrive_count is not None else {})
    return {"messageId": str(uuid.uuid4()), "body": body, "attributes": {}, "eventSource": "aws:sqs",
            "messageAttributes": attributes}


def test_envelope_reaches_the_job_parameter_as_the_exact_string_sent(batch, monkeypatch):
    client, env = batch
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Escapes, nested JSON text, unicode and spacing a re-serialization would change.
    body = ('{"jobId": "j-1", "type": "analysis",  "payload": {"q": "say \\"hi\\"", '
            '"path": "C:\\\\tmp", "text": "caf\\u00e9 \u2603", "nested": "{\\"a\\": 1}"}, '
            '"submittedAt": "2026-01-01T00:00:00Z"}')
    record = _record(body)
    assert submitter.handler({"Records": [record]}) == {"batchItemFailures": []}
    (job,) = client.list_jobs(jobQueue=env["JOB_QUEUE"], jobStatus="SUCCEEDED")["jobSummaryList"]
    described = client.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    assert described["parameters"] == {"envelope": body, "generation": "0"}
    assert described["jobName"] == "jobfleet-test-batch"


def test_a_failed_submit_is_a_batch_item_failure_and_the_others_go_through(batch, monkeypatch):
    """SubmitJob refused (here: an unknown job queue) -> only that message stays for SQS to retry."""
    _, env = batch
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    good = _record('{"jobId": "j-2"}')
    assert submitter.handler({"Records": [good]}) == {"batchItemFailures": []}
    monkeypatch.setenv("JOB_QUEUE", "no-such-queue")
    bad = _record('{"jobId": "j-3"}')
    result = submitter.handler({"Records": [bad]})
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}


def test_fails_naming_the_missing_variable(batch, monkeypatch):
    _, env = batch
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JOB_DEFINITION")
    with pytest.raises(ConfigError, match="JOB_DEFINITION"):
        submitter.handler({"Records": [_record('{"jobId": "j-4"}')]})


def test_a_redriven_message_runs_as_its_generation(batch, monkeypatch):
    """The copy's jobfleet.redriveCount becomes the job parameter `generation`; a count that is not
    one leaves the message for SQS (and, after maxReceiveCount, the DLQ) untouched."""
    client, env = batch
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    redriven, malformed = _record('{"jobId": "j-5"}', "2"), _record('{"jobId": "j-6"}', "1e9999")
    result = submitter.handler({"Records": [redriven, malformed]})
    assert result == {"batchItemFailures": [{"itemIdentifier": malformed["messageId"]}]}
    jobs = client.list_jobs(jobQueue=env["JOB_QUEUE"], jobStatus="SUCCEEDED")["jobSummaryList"]
    described = client.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]
    assert [d["parameters"] for d in described if "j-5" in d["parameters"]["envelope"]] == [
        {"envelope": '{"jobId": "j-5"}', "generation": "2"}]
    assert not [d for d in described if "j-6" in d["parameters"]["envelope"]]
