"""EMF records, JSON logs, ECS task protection against a stub agent, and the health-check file."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from worker.lifecycle import TaskProtection, health_file_fresh, touch_health_file
from worker.observability import JsonFormatter, Metrics

from tests.worker_image.conftest import CHECKOUT_PATH


def test_job_outcome_is_one_emf_record_per_line():
    stream = io.StringIO()
    Metrics("critical", stream).job_outcome(
        job_id="j-1",
        job_type="onboarding",
        attempt=2,
        outcome="failed",
        duration_ms=12.5,
        queue_wait_ms=340.0,
        worker_id="w",
        error_type="ConnectionError",
        error_message="refused",
    )
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "JobFleet"
    assert directive["Dimensions"] == [["JobType", "Tier"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "JobsFailed": "Count",
        "JobDuration": "Milliseconds",
        "QueueWait": "Milliseconds",
    }
    # every metric and dimension named in the directive is a top-level member, as EMF requires
    assert (record["JobsFailed"], record["JobDuration"], record["QueueWait"]) == (1, 12.5, 340.0)
    assert (record["Tier"], record["JobType"], record["jobId"], record["attempt"]) == (
        "critical",
        "onboarding",
        "j-1",
        2,
    )
    assert record["outcome"] == "failed" and record["errorType"] == "ConnectionError"


def test_memory_pause_and_breaker_open_metrics():
    stream = io.StringIO()
    metrics = Metrics("standard", stream)
    metrics.memory_pause(0.83)
    metrics.breaker_open("report")
    pause, breaker = (json.loads(line) for line in stream.getvalue().splitlines())
    assert pause["MemoryPauses"] == 1 and pause["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Tier"]]
    assert breaker["BreakerOpens"] == 1 and breaker["JobType"] == "report"


def test_json_log_lines_carry_extra_fields():
    record = logging.LogRecord("worker.x", logging.WARNING, __file__, 1, "hello %s", ("there",), None)
    record.jobId = "j-9"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello there" and entry["jobId"] == "j-9" and entry["level"] == "WARNING"


class _Agent(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict]] = []

    def do_PUT(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Agent.calls.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"protection": {}}')

    def log_message(self, *args):
        return


@pytest.fixture()
def ecs_agent():
    _Agent.calls = []
    server = HTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v4/abc"
    server.shutdown()


def test_task_protection_held_while_busy_renewed_and_released(ecs_agent):
    protection = TaskProtection(ecs_agent, expires_in_minutes=10)
    protection.update(busy=False, now=0)
    assert _Agent.calls == []  # idle and never protected: nothing to say
    protection.update(busy=True, now=1)
    protection.update(busy=True, now=2)  # no repeat while protection is fresh
    protection.update(busy=True, now=1 + 301)  # renewed at half its lifetime
    protection.update(busy=False, now=400)
    assert _Agent.calls == [
        ("/v4/abc/task-protection/v1/state", {"ProtectionEnabled": True, "ExpiresInMinutes": 10}),
        ("/v4/abc/task-protection/v1/state", {"ProtectionEnabled": True, "ExpiresInMinutes": 10}),
        ("/v4/abc/task-protection/v1/state", {"ProtectionEnabled": False}),
    ]
    assert not protection.enabled


def test_task_protection_is_a_no_op_outside_ecs_and_survives_an_unreachable_agent():
    TaskProtection(None, 10).update(busy=True, now=0)
    unreachable = TaskProtection("http://127.0.0.1:9", 10, timeout=0.5)
    unreachable.update(busy=True, now=0)
    assert not unreachable.enabled  # will retry on the next tick


def test_health_file_freshness(tmp_path):
    path = str(tmp_path / "health")
    assert not health_file_fresh(path, 60)
    touch_health_file(path)
    assert health_file_fresh(path, 60)
    assert not health_file_fresh(path, 60, now=time.time() + 61)


def test_health_command_exit_codes(tmp_path):
    path = tmp_path / "health"
    env = {**os.environ, "HEALTH_FILE": str(path), "PYTHONPATH": os.pathsep.join(CHECKOUT_PATH)}
    command = [sys.executable, "-m", "worker", "health", "--max-age", "30"]
    assert subprocess.run(command, env=env, check=False).returncode == 1
    path.touch()
    assert subprocess.run(command, env=env, check=False).returncode == 0
    old = time.time() - 120
    os.utime(path, (old, old))
    assert subprocess.run(command, env=env, check=False).returncode == 1
