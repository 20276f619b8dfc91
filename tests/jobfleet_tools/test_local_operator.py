"""Local mode for a newcomer: the banner says auth is off and shows a redrive command that works
without AWS credentials, and a second instance on a taken port stops before its banner."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from jobfleet_config.config import load_environment
from jobfleet_contract.environment import ApiAuth
from jobfleet_tools.local.fleet import LocalFleet
from jobfleet_tools.local.processes import Output
from jobfleet_tools.local.resources import create_status_table

REPO = Path(__file__).resolve().parents[2]
CHECKOUT = {"PYTHONPATH": os.pathsep.join(str(p) for p in (REPO / "worker_image", REPO / "lambda", REPO))}


def no_aws_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: no keys, no profile, no credential files."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(CHECKOUT, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    return env


def banner(fleet: LocalFleet) -> list[str]:
    stream = io.StringIO()
    fleet.out = Output(stream)
    fleet.banner()
    return stream.getvalue().splitlines()


def test_the_banner_says_auth_is_off_and_its_redrive_command_works_without_credentials(
        moto_endpoint, sqs, tmp_path):
    config = load_environment("dev")
    fleet = LocalFleet(config, port=8080, handlers="", run_dir=tmp_path, output=Output(io.StringIO()))
    # The resources local mode makes, on the shared moto server.
    fleet.aws.endpoint = moto_endpoint
    for tier in config.tiers:
        name = config.resource_name(tier.name)
        fleet.aws.queue_urls[tier.name] = sqs.create_queue(QueueName=name)["QueueUrl"]
        fleet.aws.dlq_urls[tier.name] = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    create_status_table(dynamodb, fleet.aws.table_name)
    try:
        check_banner(fleet, config.tiers[0].name, tmp_path)
    finally:
        dynamodb.delete_table(TableName=fleet.aws.table_name)
        for url in [*fleet.aws.queue_urls.values(), *fleet.aws.dlq_urls.values()]:
            sqs.delete_queue(QueueUrl=url)


def check_banner(fleet: LocalFleet, first_tier: str, tmp_path: Path) -> None:
    lines = banner(fleet)

    auth = [line for line in lines if "auth:" in line]
    assert len(auth) == 1 and "OFF" in auth[0], lines
    (command,) = [line.strip() for line in lines if "jobfleet_tools redrive" in line]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "jobfleet_tools"]
    done = subprocess.run([sys.executable, *argv[1:]], env=no_aws_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith(f"redrive dev/{first_tier} (local)")

    fleet.auth = ApiAuth("jwt", "https://issuer.example", "jobs-api")
    assert [line for line in banner(fleet) if "auth:" in line] == [
        "  auth:         bearer tokens of https://issuer.example for jobs-api"]


class _Healthy(BaseHTTPRequestHandler):
    """The API of a local mode that is already running."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok", "tiers": []}')

    def log_message(self, *args: Any) -> None:
        pass


def test_a_second_local_mode_on_a_taken_port_fails_before_its_banner(tmp_path):
    first = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=first.serve_forever, daemon=True).start()
    port = first.server_address[1]
    try:
        done = subprocess.run([sys.executable, "-m", "jobfleet_tools", "local", "--port", str(port),
                               "--run-dir", str(tmp_path)],
                              env={**os.environ, **CHECKOUT}, cwd=REPO, capture_output=True, text=True,
                              timeout=120)
    finally:
        first.shutdown()
    assert done.returncode == 2
    assert "Ctrl-C stops everything." not in done.stdout
    assert done.stderr.count("\n") == 1 and f"port {port}" in done.stderr, done.stderr
