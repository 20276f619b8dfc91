"""Local mode end to end: `python -m jobfleet_tools local` as a real process, 100 jobs through its
HTTP API."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import boto3
import httpx
import psutil
import pytest

from jobfleet_config.config import ENVIRONMENTS_DIR, load_environment
from jobfleet_tools.local.fleet import EXAMPLE_JOB
from jobfleet_tools.local.processes import job_summary
from tests.support import polling

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).parent / "support"


def checkout_path(*extra: Path) -> dict[str, str]:
    """PYTHONPATH for a subprocess that must run this checkout's code, not an installed copy."""
    return {"PYTHONPATH": os.pathsep.join(
        str(path) for path in (*extra, REPO / "worker_image", REPO / "lambda", REPO))}
FINAL = {"succeeded", "dead-lettered"}

# A test environment: the real defaults.toml plus short job limits and drain budgets, and the
# test-only job types routed to tiers.
E2E_TOML = """
[app]
removal_policy = "destroy"

[api]
allow_plain_http = true
deletion_protection = false

[[tiers]]
name = "critical"
max_job_seconds = 30
stop_timeout_seconds = 15

[[tiers]]
name = "standard"
expected_job_seconds = 5
max_job_seconds = 30
stop_timeout_seconds = 15

[[tiers]]
name = "batch"
expected_job_seconds = 5
max_job_seconds = 60
stop_timeout_seconds = 15

[job_types]
"e2e.flaky" = "standard"
"e2e.poison" = "critical"

[guard]
waivers."CT.ELASTICLOADBALANCING.PR.1" = "a local test environment: plain HTTP, no certificate"
waivers."CT.ELASTICLOADBALANCING.PR.5" = "a local test environment: nothing to protect from deletion"
"""


# Each poll reads every job's status over HTTP: four a second are enough.
wait_for = functools.partial(polling.wait_for, interval=0.25)


@contextmanager
def local_mode(args: list[str], env: dict[str, str], out_path: Path,
               stop_timeout: float) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m jobfleet_tools local ARGS` as a real process in its own session, its output in
    out_path; yields (the process, its API URL) once it prints its banner. On leaving: Ctrl-C (SIGINT)
    and its drain, the whole group killed if it outlives stop_timeout."""
    with out_path.open("w") as out:
        local = subprocess.Popen([sys.executable, "-m", "jobfleet_tools", "local", *args], cwd=REPO, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: local.poll() is not None or "Ctrl-C stops everything." in out_path.read_text(), 90,
                 "local mode prints its banner")
        assert local.poll() is None, out_path.read_text()
        yield local, re.search(r"API: +(http://127\.0\.0\.1:\d+)", out_path.read_text()).group(1)
    finally:
        if local.poll() is None:
            local.send_signal(signal.SIGINT)
        try:
            local.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(local.pid, signal.SIGKILL)
            raise


@pytest.fixture()
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "environments"
    directory.mkdir()
    shutil.copy(ENVIRONMENTS_DIR / "defaults.toml", directory / "defaults.toml")
    (directory / "e2e.toml").write_text(E2E_TOML)
    return directory


def test_job_summary_lines():
    line = ('{"event": "job", "outcome": "dead-lettered", "JobType": "e2e.poison", "jobId": "j1", '
            '"attempt": 1, "errorType": "PermanentError", "errorMessage": "bad"}')
    assert job_summary("critical", line) == (
        "[critical] dead-lettered e2e.poison   j1 attempt 1: PermanentError: bad")
    assert job_summary("critical", '{"event": "memory-pause"}') is None
    assert job_summary("critical", "not json") is None


def test_local_mode_refuses_a_bad_environment(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "jobfleet_tools", "local", "--env", "nope"], cwd=REPO,
                            env={**os.environ, **checkout_path()}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "env = 'nope'" in result.stderr and "dev" in result.stderr


@pytest.mark.slow
def test_local_mode_end_to_end(tmp_path: Path, config_dir: Path):
    config = load_environment("e2e", config_dir)
    run_dir = tmp_path / "run"
    out_path = tmp_path / "local.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(checkout_path(SUPPORT),
               WORKER_BACKOFF_BASE_SECONDS="0.5")  # transient retries after ~1 s, not ~2-4 s
    args = ["--env", "e2e", "--config-dir", str(config_dir), "--handlers", "local_e2e_jobs",
            "--run-dir", str(run_dir)]
    # On leaving: Ctrl-C; everything stops, workers drain, nothing is left running.
    with local_mode(args, env, out_path, stop_timeout=90) as (local, api):
        output = lambda: out_path.read_text()  # noqa: E731
        endpoint = re.search(r"moto: +(http://127\.0\.0\.1:\d+)", output()).group(1)
        assert "curl -s -X POST" in output()

        fleet = psutil.Process(local.pid).children(recursive=True)
        commands = Counter(" ".join(p.cmdline()[-1:]) for p in fleet)
        assert commands["api"] == 1 and commands["run"] == len(config.service_tiers) == 2, commands

        # --- 100 jobs across every type, through the HTTP API ---
        jobs: dict[str, tuple[str, dict]] = {}  # jobId -> (expected final status, request)
        requests = [EXAMPLE_JOB,
                    {"type": "e2e.flaky", "payload": {"succeedOn": 3}},
                    {"type": "e2e.poison", "payload": {"customer": "c-13"}}]
        requests += [{"type": "onboarding", "payload": {"userId": f"u-{i}", "email": f"u{i}@example.com",
                                                        "apiLatencySeconds": 0.01}} for i in range(52)]
        requests += [{"type": "report", "payload": {"rows": 200, "output": str(tmp_path / f"r{i}.csv")}}
                     for i in range(39)]
        requests += [{"type": "analysis", "payload": {"steps": 1, "stepSeconds": 0.05}} for _ in range(6)]
        assert len(requests) == 100
        with httpx.Client(base_url=api, timeout=30) as client:
            for request in requests:
                response = client.post("/jobs", json=request)
                assert response.status_code == 202, response.text
                expected = "dead-lettered" if request["type"] == "e2e.poison" else "succeeded"
                jobs[response.json()["jobId"]] = (expected, request)
                assert response.json()["tier"] == config.job_types[request["type"]]

            final: dict[str, dict] = {}

            def all_final() -> bool:
                for job_id in jobs.keys() - final.keys():
                    status = client.get(f"/jobs/{job_id}")
                    assert status.status_code == 200, status.text
                    if status.json()["status"] in FINAL:
                        final[job_id] = status.json()
                return len(final) == len(jobs)

            wait_for(all_final, 120, f"every job final; see {out_path}")

        by_type = {request["type"]: job_id for job_id, (_, request) in jobs.items()}
        for job_id, (expected, request) in jobs.items():
            assert final[job_id]["status"] == expected, (request, final[job_id])
            assert final[job_id]["type"] == request["type"]
        flaky = final[by_type["e2e.flaky"]]
        assert flaky["attempts"] == 3 and flaky["finishedAt"], flaky
        poison = final[by_type["e2e.poison"]]
        assert poison["attempts"] == 1
        assert poison["lastError"] == "PermanentError: customer record 'c-13' is malformed"
        assert all(final[j]["attempts"] == 1 for j, (_, r) in jobs.items() if r["type"] != "e2e.flaky")

        # --- the DLQs hold exactly the permanent failure, with its reason ---
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        dead = []
        for tier in config.tiers:
            dlq = sqs.get_queue_url(QueueName=config.resource_name(tier.name) + "-dlq")["QueueUrl"]
            while batch := sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                               MessageAttributeNames=["All"]).get("Messages", []):
                dead += [(tier.name, m) for m in batch]
        assert len(dead) == 1, dead
        tier_name, message = dead[0]
        assert tier_name == "critical" and by_type["e2e.poison"] in message["Body"]
        reason = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert reason["jobfleet.errorType"] == "PermanentError"
        assert reason["jobfleet.errorMessage"] == "customer record 'c-13' is malformed"
        assert reason["jobfleet.jobType"] == "e2e.poison" and reason["jobfleet.attempt"] == "1"

        # Every source queue is empty once the workers' batched deletes are flushed.
        def queues_empty() -> bool:
            for tier in config.tiers:
                url = sqs.get_queue_url(QueueName=config.resource_name(tier.name))["QueueUrl"]
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                if any(int(v) for v in attrs.values()):
                    return False
            return True

        wait_for(queues_empty, 30, "source queues empty")

        # --- one "Job State Change" event per job, through EventBridge to the subscription queue ---
        events_file = run_dir / "events.jsonl"

        def all_events() -> list[dict]:
            lines = events_file.read_text().splitlines() if events_file.exists() else []
            return len(lines) >= len(jobs) and [json.loads(line)["detail"] for line in lines]

        events = {e["jobId"]: e for e in wait_for(all_events, 30, "an event per job")}
        assert {job_id: e["state"] for job_id, e in events.items()} == {
            job_id: expected for job_id, (expected, _) in jobs.items()}
        assert events[by_type["e2e.poison"]]["error"].startswith("PermanentError: customer record")
        assert "[events] dead-lettered e2e.poison" in output()
        fleet = psutil.Process(local.pid).children(recursive=True)
    text = out_path.read_text()
    assert local.returncode == 0, text
    assert "stopped critical (exit code 0)" in text and "stopped standard (exit code 0)" in text, text
    assert "local mode stopped" in text
    survivors = [p for p in fleet if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], survivors
    leftovers = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        with_run_dir = " ".join(proc.info["cmdline"] or []) + " ".join((proc.info["environ"] or {}).values())
        if str(run_dir) in with_run_dir:
            leftovers.append(proc)
    assert leftovers == [], leftovers


@pytest.mark.slow
def test_local_mode_runs_what_the_dev_config_names_with_results_and_events(tmp_path: Path):
    """The example team's dev.toml: its package's jobs end to end, a stored result and a published
    "Job State Change" event for each, on a service tier (thread and process isolation) and a batch tier."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.conftest import team_config_dir

    class Partner(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers["Authorization"] == "Bearer local-key"
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b'{"synced": 1}')

        def log_message(self, *args):
            pass

    partner = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    threading.Thread(target=partner.serve_forever, daemon=True).start()
    config_dir = team_config_dir(tmp_path / "environments")
    run_dir, out_path = tmp_path / "run", tmp_path / "local.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # The secret is exported in the shell (local mode fetches none); the shell's URL wins locally.
    env.update(checkout_path(), PARTNER_API_KEY="local-key",
               PARTNER_API_URL=f"http://127.0.0.1:{partner.server_port}")
    env.pop("WORKER_HANDLERS", None)
    args = ["--env", "dev", "--config-dir", str(config_dir), "--run-dir", str(run_dir)]
    with ExitStack() as stack:
        stack.callback(partner.shutdown)
        local, api = stack.enter_context(local_mode(args, env, out_path, stop_timeout=150))
        output = lambda: out_path.read_text()  # noqa: E731
        assert "results:      s3://jobfleet-dev-results/results/<jobId>.json" in output()
        requests = {
            "invoice.render": {"customer": "Acme", "items": [{"description": "Plan", "unitPrice": 12.5}]},
            "usage.analyse": {"samples": [1, 2, 3]},
            "partner.sync": {"account": "a-1"},
        }
        with httpx.Client(base_url=api, timeout=30) as client:
            jobs = {}
            for job_type, payload in requests.items():
                response = client.post("/jobs", json={"type": job_type, "payload": payload})
                assert response.status_code == 202, response.text
                jobs[job_type] = response.json()["jobId"]

            def finished() -> dict | None:
                states = {t: client.get(f"/jobs/{j}").json() for t, j in jobs.items()}
                return states if all(s["status"] in FINAL for s in states.values()) else None

            final = wait_for(finished, 120, f"team jobs final; see {out_path}")
        assert {t: s["status"] for t, s in final.items()} == dict.fromkeys(requests, "succeeded"), final
        assert final["invoice.render"]["result"]["total"] == "12.50"
        assert final["usage.analyse"]["result"]["mean"] == 2.0
        assert final["partner.sync"]["result"] == {"account": "a-1", "partner": {"synced": 1}}
        assert final["usage.analyse"]["resultLocation"] == (
            f"s3://jobfleet-dev-results/results/{jobs['usage.analyse']}.json")

        events_file = run_dir / "events.jsonl"

        def events() -> dict | None:
            lines = events_file.read_text().splitlines() if events_file.exists() else []
            found = {json.loads(line)["detail"]["jobId"]: json.loads(line) for line in lines}
            return found if set(jobs.values()) <= set(found) else None

        published = wait_for(events, 30, "a Job State Change event per job")
        for job_type, job_id in jobs.items():
            event = published[job_id]
            assert event["source"] == "jobfleet" and event["detail-type"] == "Job State Change"
            assert event["detail"]["state"] == "succeeded" and event["detail"]["type"] == job_type
            assert event["detail"]["result"]["key"] == f"results/{job_id}.json"
        assert published[jobs["usage.analyse"]]["detail"]["tier"] == "batch"
    assert local.returncode == 0, out_path.read_text()
