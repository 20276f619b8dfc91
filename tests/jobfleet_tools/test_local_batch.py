"""Local mode's batch tier runs the deployed feed: queue -> the real feed function (batch_submit) ->
SubmitJob on moto's Batch API -> the job definition's command (`run-one`) with its environment and
retry strategy -> status table; a finally failed job -> the tier DLQ in the failure route's shape."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import uuid
from pathlib import Path

import boto3
import httpx
import psutil
import pytest

from jobfleet_config.config import ENVIRONMENTS_DIR, load_environment
from jobfleet_contract.envelope import Envelope
from jobfleet_tools.local.batch import LocalBatchTier, retry_action, retry_strategy
from jobfleet_tools.local.completion import LocalCompletion
from jobfleet_tools.local.processes import Output
from jobfleet_tools.local.resources import LocalAws
from tests.jobfleet_tools.test_local import E2E_TOML, SUPPORT, checkout_path, local_mode, wait_for

BATCH_TYPES = '''"e2e.batch-poison" = "batch"
"e2e.batch-flaky" = "batch"
"e2e.batch-reclaimed" = "batch"
'''


def _config_dir(directory: Path, name: str, toml: str) -> Path:
    directory.mkdir()
    (directory / "defaults.toml").write_text((ENVIRONMENTS_DIR / "defaults.toml").read_text())
    (directory / f"{name}.toml").write_text(toml)
    return directory


def _aws(endpoint: str, service: str):
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _drain(sqs, queue_url: str) -> list[dict]:
    messages = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                       MessageAttributeNames=["All"]).get("Messages", []):
        messages += batch
    return messages


def test_retry_action_is_batchs_evaluate_on_exit():
    strategy = retry_strategy(load_environment("dev"))["evaluateOnExit"]
    assert retry_action(strategy, status_reason="Host EC2 (instance i-1) terminated.", reason="",
                        exit_code=None) == "RETRY"
    assert retry_action(strategy, status_reason="Essential container in task exited", reason="",
                        exit_code=1) == "EXIT"
    # moto returns actions lower-cased; no condition matching means a retry.
    assert retry_action([{"onExitCode": "1*", "action": "exit"}], status_reason="x", reason="",
                        exit_code=2) == "RETRY"
    assert retry_action([{"onExitCode": "1*", "action": "exit"}], status_reason="x", reason="",
                        exit_code=137) == "EXIT"


@pytest.mark.slow
def test_the_batch_feed_end_to_end_in_local_mode(tmp_path: Path):
    config_dir = _config_dir(tmp_path / "environments", "e2e", E2E_TOML.replace(
        '"e2e.poison" = "critical"\n', '"e2e.poison" = "critical"\n' + BATCH_TYPES))
    config = load_environment("e2e", config_dir)
    run_dir, out_path = tmp_path / "run", tmp_path / "local.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(checkout_path(SUPPORT))
    args = ["--env", "e2e", "--config-dir", str(config_dir), "--handlers", "local_e2e_jobs",
            "--run-dir", str(run_dir)]
    with local_mode(args, env, out_path, stop_timeout=90) as (local, api):
        endpoint = re.search(r"moto: +(http://127\.0\.0\.1:\d+)", out_path.read_text()).group(1)
        sqs, batch = _aws(endpoint, "sqs"), _aws(endpoint, "batch")
        queue = sqs.get_queue_url(QueueName=config.resource_name("batch"))["QueueUrl"]
        dlq = sqs.get_queue_url(QueueName=config.resource_name("batch") + "-dlq")["QueueUrl"]

        # Straight to the queue, as another producer would: a first delivery and a redriven copy.
        direct = Envelope(str(uuid.uuid4()), "analysis", {"steps": 1, "stepSeconds": 0.01},
                          "2026-01-01T00:00:00Z").to_json()
        redriven = Envelope(str(uuid.uuid4()), "analysis", {"steps": 1, "stepSeconds": 0.01},
                            "2026-01-01T00:00:00Z").to_json()
        sqs.send_message(QueueUrl=queue, MessageBody=direct)
        sqs.send_message(QueueUrl=queue, MessageBody=redriven, MessageAttributes={
            "jobfleet.redriveCount": {"DataType": "Number", "StringValue": "1"}})
        with httpx.Client(base_url=api, timeout=30) as client:
            jobs = {}
            for name, request in {
                "analysis": {"type": "analysis", "payload": {"steps": 1, "stepSeconds": 0.01}},
                "poison": {"type": "e2e.batch-poison", "payload": {"customer": "c-7"}},
                "flaky": {"type": "e2e.batch-flaky", "payload": {"succeedOn": 2}},
                "reclaimed": {"type": "e2e.batch-reclaimed", "payload": {"holdSeconds": 120}},
            }.items():
                response = client.post("/jobs", json=request)
                assert response.status_code == 202, response.text
                jobs[name] = response.json()["jobId"]
            jobs["direct"], jobs["redriven"] = json.loads(direct)["jobId"], json.loads(redriven)["jobId"]

            def status(name: str) -> dict:
                response = client.get(f"/jobs/{jobs[name]}")
                return response.json() if response.status_code == 200 else {}

            # A reclaimed Spot host: the first attempt's process is killed from outside; the retry
            # strategy retries it (Host EC2*) and attempt 2 runs with AWS_BATCH_JOB_ATTEMPT=2.
            wait_for(lambda: status("reclaimed").get("status") == "running", 60,
                     f"reclaimed running; {out_path}")

            def first_attempt() -> psutil.Process | None:
                for proc in psutil.Process(local.pid).children(recursive=True):
                    try:
                        if "run-one" in proc.cmdline() and jobs["reclaimed"] in " ".join(proc.cmdline()):
                            return proc
                    except psutil.NoSuchProcess:
                        continue
                return None

            victim = wait_for(first_attempt, 30, "the reclaimed job's run-one process")
            assert victim.environ()["AWS_BATCH_JOB_ATTEMPT"] == "1"
            victim.send_signal(signal.SIGKILL)

            expected = {"analysis": ("succeeded", 1), "direct": ("succeeded", 1),
                        "redriven": ("succeeded", 1), "poison": ("dead-lettered", 1),
                        "flaky": ("failed", 1), "reclaimed": ("succeeded", 2)}

            def all_final() -> dict | None:
                states = {name: status(name) for name in expected}
                return states if all(states[n].get("status") == expected[n][0] for n in expected) else None

            final = wait_for(all_final, 120, f"final states; {out_path}")
            assert {n: (s["status"], s["attempts"]) for n, s in final.items()} == expected
            assert final["reclaimed"]["result"] == {"attempt": 2}

        # Every job went through SubmitJob with documented string parameters.
        job_queue = batch.describe_job_queues(jobQueues=[config.resource_name("batch")])["jobQueues"][0]
        summaries = batch.list_jobs(jobQueue=job_queue["jobQueueArn"])["jobSummaryList"]
        described = batch.describe_jobs(jobs=[s["jobId"] for s in summaries])["jobs"]
        parameters = {json.loads(d["parameters"]["envelope"])["jobId"]: d["parameters"] for d in described}
        assert set(parameters) == set(jobs.values())
        assert parameters[jobs["direct"]] == {"envelope": direct, "generation": "0"}
        assert parameters[jobs["redriven"]] == {"envelope": redriven, "generation": "1"}
        item = _aws(endpoint, "dynamodb").get_item(TableName=config.resource_name("jobs"),
                                                   Key={"jobId": {"S": jobs["redriven"]}})["Item"]
        assert item["generation"] == {"N": "1"}

        # The DLQ holds the two failed jobs in the failure route's shape, reason in the body.
        def dead_letters() -> dict | None:
            found = {json.loads(json.loads(m["Body"])["envelope"])["jobId"]: json.loads(m["Body"])
                     for m in _drain(sqs, dlq)}
            return found if len(found) >= 2 else None

        dead = wait_for(dead_letters, 30, "two dead letters")
        assert set(dead) == {jobs["poison"], jobs["flaky"]}
        for name, exit_code in (("poison", "2"), ("flaky", "1")):
            failure = dead[jobs[name]]["failure"]
            assert failure["errorType"] == "BatchJobFailed" and failure["source"] == "aws.batch"
            assert failure["exitCode"] == exit_code and len(failure["attempts"]) == 1
            assert failure["reason"] == "Essential container in task exited"
            assert failure["jobName"] == config.resource_name("batch")
        assert "[batch] dead-lettered e2e.batch-poison" in out_path.read_text()
        wait_for(lambda: not any(int(v) for v in sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages",
                                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"].values()),
                 30, "the batch queue empty")
    text = out_path.read_text()
    assert local.returncode == 0, text
    assert "stopped the batch feed and executor of tier batch" in text and "local mode stopped" in text


def test_a_refused_submit_leaves_the_message_until_the_queue_dead_letters_it(tmp_path, moto_endpoint):
    """SubmitJob refused (the job queue is gone): the feed reports the message as a batch item failure,
    so the event source mapping leaves it; after maxReceiveCount receives SQS moves it to the DLQ
    untouched, and no job ran."""
    config_dir = _config_dir(tmp_path / "environments", "feedfail", '''
[[tiers]]
name = "batch"
max_receive_count = 2
''')
    config = load_environment("feedfail", config_dir)
    (tier,) = config.batch_tiers
    aws = LocalAws(config)
    aws.endpoint = moto_endpoint
    aws.create_resources()
    queue, dlq = aws.queue_urls["batch"], aws.dlq_urls["batch"]
    sqs = aws.client("sqs")
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "1"})  # quick redelivery
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    console = io.StringIO()
    out = Output(console)
    feed = LocalBatchTier(aws, config, tier, handlers=(), run_dir=run_dir, out=out,
                          completion=LocalCompletion(config, aws.client, run_dir, out.line))
    feed.create()
    batch = aws.client("batch")
    batch.update_job_queue(jobQueue=feed.job_queue_arn, state="DISABLED")
    batch.delete_job_queue(jobQueue=feed.job_queue_arn)
    body = Envelope(str(uuid.uuid4()), "analysis", {"steps": 1}, "2026-01-01T00:00:00Z").to_json()
    sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes={
        "producer": {"DataType": "String", "StringValue": "nightly"}})
    feed.start()
    try:
        (dead,) = wait_for(lambda: _drain(sqs, dlq), 60, "the message in the DLQ")
    finally:
        feed.stop(threading.Event())
    assert dead["Body"] == body
    assert {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()} == {"producer": "nightly"}
    log = (run_dir / "batch.log").read_text()
    assert log.count('"event": "submit-failed"') >= 2, log
    assert "FAILED" not in console.getvalue() and "succeeded" not in console.getvalue()
