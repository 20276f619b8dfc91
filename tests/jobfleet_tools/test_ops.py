"""`python -m jobfleet_tools redrive`: the deployed path through a stubbed Lambda client, the local path
against moto, and its argument errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from jobfleet_config.config import load_environment
from jobfleet_tools import ops

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], client_factory: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ops.main(argv, client_factory=client_factory or _no_aws, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _no_aws(service: str, **kwargs: Any) -> Any:
    raise AssertionError(f"no AWS client expected, asked for {service}")


class StubbedLambda:
    """A client factory handing out one Lambda client whose invoke calls are stubbed."""

    def __init__(self) -> None:
        self.client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="testing",
                                   aws_secret_access_key="testing")
        self.stubber = Stubber(self.client)
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, service: str, **kwargs: Any) -> Any:
        self.requests.append((service, kwargs))
        return self.client

    def answer(self, event: dict[str, Any] | None, payload: Any, function_error: str | None = None,
               function_name: str = "jobfleet-prod-redrive") -> None:
        body = json.dumps(payload).encode()
        response = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
        if function_error:
            response["FunctionError"] = function_error
        expected = {"FunctionName": function_name, "InvocationType": "RequestResponse",
                    "Payload": ANY if event is None else json.dumps(event).encode()}
        self.stubber.add_response("invoke", response, expected)


SELECTIVE_RESULT = {"mode": "selective", "dryRun": True, "examined": 120, "matched": 40, "moved": 0,
                    "kept": 120, "failed": 0, "quarantined": 2, "stoppedEarly": False,
                    "stopReason": "drained", "remaining": 120}


def test_invokes_the_environment_function_with_the_event_and_prints_a_table():
    lambda_stub = StubbedLambda()
    lambda_stub.answer(
        {"tier": "critical", "dryRun": True, "maxMessages": 50, "ratePerSecond": 5.0,
         "filter": {"types": ["onboarding", "report"], "errorTypes": ["TimeoutError"],
                    "olderThanSeconds": 7200.0}},
        SELECTIVE_RESULT,
    )
    with lambda_stub.stubber:
        code, out, err = run(["--env", "prod", "--tier", "critical", "--dry-run",
                              "--type", "onboarding", "--type", "report", "--error-type", "TimeoutError",
                              "--older-than", "2h", "--max", "50", "--rate", "5"], lambda_stub)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "redrive prod/critical (jobfleet-prod-redrive)"
    assert lines[1].split() == ["field", "value"]
    assert set(lines[2]) == {"-", " "}
    rows = dict(line.split(maxsplit=1) for line in lines[3:])
    assert rows == {"mode": "selective", "dryRun": "yes", "examined": "120", "matched": "40", "moved": "0",
                    "kept": "120", "failed": "0", "quarantined": "2", "stoppedEarly": "no",
                    "stopReason": "drained", "remaining": "120"}
    # One attempt only: a retried invoke would start a second redrive.
    [(service, kwargs)] = lambda_stub.requests
    assert service == "lambda"
    assert kwargs["region_name"] == load_environment("prod").app.region
    assert kwargs["config"].retries == {"total_max_attempts": 1}
    assert kwargs["config"].read_timeout > load_environment("prod").redrive.timeout_seconds


def test_function_name_and_region_can_be_given():
    lambda_stub = StubbedLambda()
    lambda_stub.answer({"tier": "standard"}, {**SELECTIVE_RESULT, "dryRun": False},
                       function_name="custom-redrive")
    with lambda_stub.stubber:
        code, out, _ = run(["--env", "dev", "--tier", "standard",
                            "--function-name", "custom-redrive", "--region", "eu-west-1"], lambda_stub)

    assert code == 0
    assert out.splitlines()[0] == "redrive dev/standard (custom-redrive)"
    assert lambda_stub.requests[0][1]["region_name"] == "eu-west-1"


def test_native_result_points_at_the_status_command():
    lambda_stub = StubbedLambda()
    lambda_stub.answer({"tier": "critical", "mode": "native", "ratePerSecond": 50.0},
                       {"mode": "native", "dryRun": False, "taskHandle": "handle-1",
                        "approximateMessagesToMove": 900, "examined": None, "matched": None,
                        "moved": None, "kept": None, "failed": None})
    with lambda_stub.stubber:
        code, out, _ = run(["--env", "prod", "--tier", "critical", "--mode", "native",
                            "--rate", "50"], lambda_stub)

    assert code == 0
    rows = dict(line.split(maxsplit=1) for line in out.splitlines()[3:-1])
    assert rows["taskHandle"] == "handle-1"
    assert rows["approximateMessagesToMove"] == "900"
    assert rows["moved"] == "-"
    assert out.splitlines()[-1] == "SQS moves the messages in the background; follow it with --status."


def test_status_prints_the_move_tasks():
    lambda_stub = StubbedLambda()
    lambda_stub.answer({"action": "status", "tier": "batch"}, {
        "action": "status", "dlqMessages": 12, "tasks": [
            {"status": "RUNNING", "taskHandle": "h2", "startedAt": "2026-03-01T10:00:00+00:00", "moved": 30,
             "toMove": 42, "ratePerSecond": 10, "destinationArn": "arn:q", "failureReason": None},
            {"status": "FAILED", "taskHandle": "h1", "startedAt": "2026-03-01T09:00:00+00:00", "moved": 0,
             "toMove": 42, "ratePerSecond": None, "destinationArn": "arn:q",
             "failureReason": "AccessDenied"},
        ]})
    with lambda_stub.stubber:
        code, out, _ = run(["--env", "prod", "--tier", "batch", "--status"], lambda_stub)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "redrive prod/batch (jobfleet-prod-redrive): 12 message(s) in the DLQ, 2 move task(s)"
    assert lines[1].split() == ["status", "startedAt", "moved", "toMove", "ratePerSecond", "taskHandle",
                                "failureReason"]
    assert lines[3].split() == ["RUNNING", "2026-03-01T10:00:00+00:00", "30", "42", "10", "h2", "-"]
    assert lines[4].split() == ["FAILED", "2026-03-01T09:00:00+00:00", "0", "42", "-", "h1", "AccessDenied"]


@pytest.mark.parametrize(
    ("payload", "function_error", "message"),
    [
        ({"errorType": "ValueError", "errorMessage": "TIER_QUEUES must be JSON"}, "Unhandled",
         "jobfleet-prod-redrive failed: ValueError: TIER_QUEUES must be JSON"),
        ({"error": "unknown tier 'critical' (known: none configured)"}, None,
         "redrive refused: unknown tier 'critical' (known: none configured)"),
    ],
)
def test_a_failed_or_refused_redrive_exits_1_with_one_line(payload, function_error, message):
    lambda_stub = StubbedLambda()
    lambda_stub.answer(None, payload, function_error)
    with lambda_stub.stubber:
        code, out, err = run(["--env", "prod", "--tier", "critical"], lambda_stub)

    assert (code, out) == (1, "")
    assert err == f"python -m jobfleet_tools redrive: {message}\n"


def test_a_missing_function_is_reported_by_name():
    lambda_stub = StubbedLambda()
    lambda_stub.stubber.add_client_error("invoke", service_error_code="ResourceNotFoundException",
                                         http_status_code=404)
    with lambda_stub.stubber:
        code, _, err = run(["--env", "prod", "--tier", "critical"], lambda_stub)

    assert code == 1
    assert err.startswith("python -m jobfleet_tools redrive: no function jobfleet-prod-redrive in us-east-1")
    assert err.count("\n") == 1


def test_other_aws_errors_exit_1_with_one_line():
    lambda_stub = StubbedLambda()
    lambda_stub.stubber.add_client_error("invoke", service_error_code="AccessDeniedException",
                                         service_message="not allowed", http_status_code=403)
    with lambda_stub.stubber:
        code, _, err = run(["--env", "prod", "--tier", "critical"], lambda_stub)

    assert code == 1
    assert "AccessDeniedException" in err and "not allowed" in err
    assert err.count("\n") == 1


PROD_CRITICAL = ["--env", "prod", "--tier", "critical"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --env, --tier"),
        (["--tier", "critical"], "the following arguments are required: --env"),
        (["--env", "prod"], "the following arguments are required: --tier"),
        (["--env", "prd", "--tier", "critical"],
         "unknown environment 'prd' (environments: dev, prod, staging)"),
        (["--env", "prod", "--tier", "bulk"], "unknown tier 'bulk' in prod (tiers: "),
        ([*PROD_CRITICAL, "--max", "0"], "argument --max: '0' is not a positive"),
        ([*PROD_CRITICAL, "--max", "ten"], "argument --max: 'ten' is not a"),
        ([*PROD_CRITICAL, "--rate", "-1"], "argument --rate: '-1' is not a"),
        ([*PROD_CRITICAL, "--older-than", "2 weeks"], "is not a duration"),
        ([*PROD_CRITICAL, "--mode", "fast"], "argument --mode: invalid choice"),
        ([*PROD_CRITICAL, "--status", "--type", "report"],
         "--status lists move tasks and takes no redrive options"),
        ([*PROD_CRITICAL, "--bogus"], "unrecognized arguments: --bogus"),
        ([*PROD_CRITICAL, "--rate", "nan"], "argument --rate: 'nan' is not a positive"),
        ([*PROD_CRITICAL, "--rate", "inf"], "argument --rate: 'inf' is not a positive"),
        ([*PROD_CRITICAL, "--older-than", "2h", "--newer-than", "1h"], "empty time window"),
        ([*PROD_CRITICAL, "--mode", "native", "--type", "report"], "mode 'native' cannot filter"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message):
    code, out, err = run(argv)

    assert (code, out) == (2, "")
    assert err.startswith("python -m jobfleet_tools redrive: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_local_mode_without_an_endpoint_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    code, _, err = run(["--env", "dev", "--tier", "critical", "--local"])
    assert code == 2
    assert err == ("python -m jobfleet_tools redrive: error: --local needs --endpoint-url or "
                   "AWS_ENDPOINT_URL\n")


@pytest.fixture()
def local_tier(sqs):
    """The dev critical tier's queue and DLQ, named as the CDK app and local mode name them."""
    name = load_environment("dev").resource_name("critical")
    target_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    yield dlq_url, target_url
    sqs.delete_queue(QueueUrl=dlq_url)
    sqs.delete_queue(QueueUrl=target_url)


def _dead_letter(job_type: str, redrive_count: int = 0) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    return {
        "Id": job_id,
        "MessageBody": json.dumps({"jobId": job_id, "type": job_type, "payload": {},
                                   "submittedAt": "2026-01-01T00:00:00Z"}),
        "MessageAttributes": {
            "jobfleet.jobType": {"DataType": "String", "StringValue": job_type},
            "jobfleet.errorType": {"DataType": "String", "StringValue": "TimeoutError"},
            "jobfleet.redriveCount": {"DataType": "Number", "StringValue": str(redrive_count)},
        },
    }


def test_local_mode_runs_the_function_code_against_the_endpoint(sqs, moto_endpoint, local_tier):
    dlq_url, target_url = local_tier
    max_redrives = load_environment("dev").redrive.max_redrives
    sqs.send_message_batch(QueueUrl=dlq_url, Entries=[
        _dead_letter("onboarding"), _dead_letter("onboarding"), _dead_letter("report"),
        _dead_letter("onboarding", redrive_count=max_redrives),
    ])

    code, out, err = run(["--env", "dev", "--tier", "critical", "--endpoint-url", moto_endpoint,
                          "--type", "onboarding"], boto3.client)

    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "redrive dev/critical (local)"
    rows = dict(line.split(maxsplit=1) for line in out.splitlines()[3:])
    # The environment's max_redrives applies locally too: one onboarding job is quarantined.
    assert {key: rows[key] for key in ("examined", "matched", "moved", "quarantined", "remaining")} == {
        "examined": "4", "matched": "3", "moved": "2", "quarantined": "1", "remaining": "2"}
    copies = sqs.receive_message(QueueUrl=target_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    assert [m["MessageAttributes"]["jobfleet.redriveCount"]["StringValue"] for m in copies["Messages"]] == [
        "1", "1"]


def test_local_mode_needs_no_aws_credentials(moto_endpoint, local_tier, tmp_path):
    # A newcomer's shell, as a real process: no keys, no profile, no credential files.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true",
               PYTHONPATH=os.pathsep.join(str(path) for path in (REPO / "lambda", REPO)))
    done = subprocess.run(
        [sys.executable, "-m", "jobfleet_tools", "redrive", "--env", "dev", "--tier", "critical",
         "--endpoint-url", moto_endpoint, "--dry-run"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == "redrive dev/critical (local)"


def test_local_mode_reports_missing_queues(moto_endpoint):
    code, out, err = run(["--env", "staging", "--tier", "batch", "--endpoint-url", moto_endpoint,
                          "--dry-run"], boto3.client)

    assert (code, out) == (1, "")
    assert err == ("python -m jobfleet_tools redrive: queue jobfleet-staging-batch or "
                   "jobfleet-staging-batch-dlq"
                   f" does not exist at {moto_endpoint}\n")


class _HtmlErrors(BaseHTTPRequestHandler):
    """A local server that answers everything with an HTML error page."""

    def do_POST(self) -> None:
        body = (b"<!DOCTYPE html>\n<html>\n<head><title>500 Internal Server Error</title></head>\n"
                b"<body>\n<h1>Internal Server Error</h1>\n<p>The server failed.</p>\n</body></html>")
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_an_html_error_page_from_the_local_server_is_one_line():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlErrors)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, out, err = run(["--env", "dev", "--tier", "critical", "--endpoint-url",
                              f"http://127.0.0.1:{server.server_address[1]}", "--dry-run"], boto3.client)
    finally:
        server.shutdown()
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "<" not in err, err
    assert "500 Internal Server Error" in err
