"""Local mode: the whole platform on one machine, from the same environment files the CDK app uses.

    python -m jobfleet_tools local [--env dev] [--port N] [--config-dir DIR] [--handlers mod[,mod]]

Starts moto as a server on 127.0.0.1 and creates in it, from ``load_environment(env)``: per tier the
queue and its DLQ (visibility timeout, retention, RedrivePolicy with the tier's maxReceiveCount —
the same names the CDK app gives them) and the job status table. Then runs, each in its own process
group:

- the job API (``python -m worker api``), with the environment variables the compute stack sets;
- one worker (``python -m worker run``) per service tier, with the ECS task's environment variables;
- for each batch tier, a poller standing in for EventBridge Pipes + AWS Batch: it receives from the
  batch queue and runs ``python -m worker run-one`` per message. Exit 0 deletes the message; exit 2
  (permanent) or a failure on the tier's last allowed attempt moves it to the DLQ with the worker's
  reason attributes (``jobfleet.errorType``, ...); other failures retry after the worker's backoff.

Ctrl-C or SIGTERM stops everything: the batch poller stops receiving and lets running jobs finish,
workers get SIGTERM and drain (the ECS stop timeout applies, then SIGKILL), the API stops, moto stops.
A second Ctrl-C kills at once. Child output goes to log files in the run directory; one line per job
outcome is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config
from worker.config import DEFAULT_HANDLERS
from worker.observability import UNKNOWN_TYPE
from worker.policy import backoff_seconds
from worker.run_one import EXIT_PERMANENT
from worker.transport import send_ready_attributes

from jobfleet_config.config import (
    ENVIRONMENTS_DIR,
    ConfigError,
    EnvironmentConfig,
    TierConfig,
    load_environment,
)
from jobfleet_contract import environment as names
from jobfleet_contract.attributes import dead_letter_attributes
from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import JobStatusStore
from jobfleet_contract.timestamps import iso_now

REPO = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
POLL_WAIT_SECONDS = 2  # short long-polls so that Ctrl-C is answered within seconds
STARTUP_TIMEOUT_SECONDS = 60.0
API_STOP_SECONDS = 10.0
# The banner's example job (worker.examples' onboarding handler needs a userId).
EXAMPLE_JOB = {"type": "onboarding", "payload": {"userId": "u-123"}}
BATCH_PARALLEL = 2  # run-one processes at once per batch tier (AWS Batch runs many; two show it)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved here: nothing may be imported between fork and exec
_PR_SET_PDEATHSIG = 1


def _new_session_with_parent_death_signal() -> None:
    """Run in the child before exec: own process group (no terminal Ctrl-C; we decide how it stops),
    and on Linux SIGTERM when local mode dies without cleaning up, so nothing is orphaned."""
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_seconds: float
    readers: list[threading.Thread] = field(default_factory=list)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Output:
    """Console lines from many threads, never interleaved mid-line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def job_summary(source: str, line: str) -> str | None:
    """One console line for a job-outcome record (the worker's EMF line on stdout), else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("event") != "job":
        return None
    text = (f"[{source}] {record.get('outcome', '?'):<13} {record.get('JobType', '?'):<12} "
            f"{record.get('jobId')} attempt {record.get('attempt')}")
    if record.get("errorType"):
        text += f": {record['errorType']}: {record.get('errorMessage', '')}"
    return text


class LocalFleet:
    def __init__(self, config: EnvironmentConfig, *, port: int, handlers: str, run_dir: Path,
                 output: Output, batch_parallel: int = BATCH_PARALLEL) -> None:
        self.config = config
        self.port = port
        self.handlers = handlers
        self.run_dir = run_dir
        self.out = output
        self.batch_parallel = batch_parallel
        self.region = config.app.region or DEFAULT_REGION
        self.stop_event = threading.Event()
        self.children: list[Child] = []
        self.pollers: list[BatchPoller] = []
        self.queue_urls: dict[str, str] = {}
        self.dlq_urls: dict[str, str] = {}
        self.table_name = config.resource_name("jobs")
        self.endpoint = ""
        self._moto = None
        self.exit_code = 0

    # --- AWS side ---------------------------------------------------------------------------------

    def client(self, service: str):
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"mode": "standard", "max_attempts": 3}))

    def status_table(self):
        return boto3.resource("dynamodb", region_name=self.region, endpoint_url=self.endpoint,
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              ).Table(self.table_name)

    def start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call otherwise
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
        self._moto.start()
        self.endpoint = f"http://{HOST}:{port}"

    def create_resources(self) -> None:
        """Queues, DLQs and the status table, as the Stateful stack defines them."""
        sqs = self.client("sqs")
        for tier in self.config.tiers:
            dlq_url = sqs.create_queue(
                QueueName=self.config.resource_name(tier.name) + "-dlq",
                Attributes={"MessageRetentionPeriod": str(tier.dlq_retention_days * 86400)},
            )["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            self.queue_urls[tier.name] = sqs.create_queue(
                QueueName=self.config.resource_name(tier.name),
                Attributes={
                    "VisibilityTimeout": str(tier.visibility_timeout_seconds),
                    "MessageRetentionPeriod": str(tier.queue_retention_days * 86400),
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                                 "maxReceiveCount": tier.max_receive_count}),
                },
            )["QueueUrl"]
            self.dlq_urls[tier.name] = dlq_url
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=self.table_name,
            KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=self.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
        )

    # --- processes --------------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
        env.update(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region, AWS_ENDPOINT_URL=self.endpoint,
            PYTHONUNBUFFERED="1",
        )
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str], stop_seconds: float) -> Child:
        log_path = self.run_dir / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", *args], env=env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, preexec_fn=_new_session_with_parent_death_signal,
        )
        child = Child(name, proc, log_path, stop_seconds)
        log_file = log_path.open("a", encoding="utf-8")
        lock = threading.Lock()

        def pump(stream: IO[str], summarize: bool) -> None:
            for line in stream:
                with lock:
                    log_file.write(line)
                    log_file.flush()
                if summarize and (summary := job_summary(name, line)):
                    self.out.line(summary)
            stream.close()

        child.readers = [
            threading.Thread(target=pump, args=(proc.stdout, True), daemon=True, name=f"{name}-out"),
            threading.Thread(target=pump, args=(proc.stderr, False), daemon=True, name=f"{name}-err"),
        ]
        for reader in child.readers:
            reader.start()
        self.children.append(child)
        return child

    def start_api(self) -> Child:
        env = self.base_env()
        # The compute stack's environment for the API container, with local values.
        env.update(names.api_environment(
            tier_queue_urls=self.queue_urls, job_types=self.config.job_types, status_table=self.table_name,
            status_ttl_days=self.config.status.ttl_days, max_payload_bytes=self.config.api.max_payload_bytes,
            tier_max_payload_bytes=self.config.tier_payload_limits(), port=self.port,
        ), **{names.API_HOST: HOST})
        return self.spawn("api", ["api"], env, API_STOP_SECONDS)

    def worker_env(self, tier: TierConfig) -> dict[str, str]:
        env = self.base_env()
        # The worker service's container environment, with local values.
        env.update(names.worker_environment(
            tier=tier.name, queue_url=self.queue_urls[tier.name], dlq_url=self.dlq_urls[tier.name],
            max_receive_count=tier.max_receive_count, concurrency=tier.concurrency, handlers=self.handlers,
            max_job_seconds=tier.max_job_seconds, stop_timeout_seconds=tier.stop_timeout_seconds,
            status_table=self.table_name, status_ttl_days=self.config.status.ttl_days,
            health_file=str(self.run_dir / f"{tier.name}.health"),
        ), **{names.WORKER_ID: f"local-{tier.name}"})
        env.setdefault(names.WORKER_POLL_WAIT_SECONDS, str(POLL_WAIT_SECONDS))
        return env

    def start(self) -> None:
        self.start_moto()
        self.create_resources()
        api = self.start_api()
        workers = [self.spawn(tier.name, ["run"], self.worker_env(tier), tier.stop_timeout_seconds)
                   for tier in self.config.service_tiers]
        for tier in self.config.batch_tiers:
            poller = BatchPoller(self, tier)
            self.pollers.append(poller)
            poller.start()
        self._wait_ready(api, workers)

    def _wait_ready(self, api: Child, workers: list[Child]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        pending = {"api": api, **{w.name: w for w in workers}}
        while pending and not self.stop_event.is_set():
            for name, child in list(pending.items()):
                if child.proc.poll() is not None:
                    raise StartupError(f"{name} exited with code {child.proc.returncode} while starting; "
                                       f"its log ({child.log_path}):\n{child.tail()}")
                ready = (self._api_healthy() if name == "api"
                         else (self.run_dir / f"{name}.health").exists())
                if ready:
                    del pending[name]
            if time.monotonic() > deadline:
                raise StartupError(f"not ready after {STARTUP_TIMEOUT_SECONDS:.0f}s: {', '.join(pending)}")
            self.stop_event.wait(0.2)

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def banner(self) -> None:
        url = self.api_url
        tiers = ", ".join(f"{t.name} ({t.runtime})" for t in self.config.tiers)
        types = ", ".join(f"{k} -> {v}" for k, v in self.config.job_types.items())
        self.out.line(f"JobFleet local mode: environment {self.config.name!r}")
        self.out.line(f"  API:          {url}   (OpenAPI: {url}/openapi.json)")
        self.out.line(f"  moto:         {self.endpoint}")
        self.out.line(f"  tiers:        {tiers}")
        self.out.line(f"  job types:    {types}")
        self.out.line(f"  status table: {self.table_name}")
        self.out.line(f"  logs:         {self.run_dir}")
        self.out.line("Try:")
        self.out.line(f"  curl -s -X POST {url}/jobs -H 'content-type: application/json' "
                      f"-d '{json.dumps(EXAMPLE_JOB)}'")
        self.out.line(f"  curl -s {url}/jobs/<jobId>")
        self.out.line("  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
                      f"aws --endpoint-url {self.endpoint} --region {self.region} sqs receive-message "
                      f"--queue-url {self.dlq_urls[self.config.tiers[0].name]} --message-attribute-names All")
        self.out.line("Ctrl-C stops everything.")

    def wait(self) -> None:
        """Until a stop is requested, or a child dies on its own (then everything stops, exit 1)."""
        while not self.stop_event.wait(0.2):
            for child in self.children:
                if child.proc.poll() is not None:
                    self.out.line(f"{child.name} exited unexpectedly with code {child.proc.returncode}; "
                                  f"stopping. Its log ({child.log_path}):\n{child.tail()}")
                    self.exit_code = 1
                    self.stop_event.set()
                    return

    def request_stop(self) -> None:
        self.stop_event.set()

    def shutdown(self, hard: threading.Event) -> None:
        """Pollers first (no new run-one), then SIGTERM everything, wait each group's budget, SIGKILL."""
        self.stop_event.set()
        for poller in self.pollers:
            poller.stop(hard)
        for child in self.children:
            if child.proc.poll() is None:
                _signal_group(child.proc, signal.SIGTERM)
        for child in self.children:
            deadline = time.monotonic() + child.stop_seconds
            while child.proc.poll() is None and time.monotonic() < deadline and not hard.is_set():
                time.sleep(0.1)
            if child.proc.poll() is None:
                self.out.line(f"{child.name} did not stop in time; killing it")
            # The group, not just the leader: a handler's own subprocesses must not outlive it.
            _signal_group(child.proc, signal.SIGKILL)
            child.proc.wait()
            for reader in child.readers:
                reader.join(timeout=5)
            code = child.proc.returncode
            how = "ended by SIGTERM" if code == -signal.SIGTERM else f"exit code {code}"
            self.out.line(f"stopped {child.name} ({how})")
        if self._moto is not None:
            self._moto.stop()
            self.out.line("stopped moto")


class StartupError(RuntimeError):
    pass


class BatchPoller:
    """Stands in for EventBridge Pipes + AWS Batch on one batch tier: one run-one process per message."""

    def __init__(self, fleet: LocalFleet, tier: TierConfig) -> None:
        self.fleet = fleet
        self.tier = tier
        self.queue_url = fleet.queue_urls[tier.name]
        self.dlq_url = fleet.dlq_urls[tier.name]
        self.sqs = fleet.client("sqs")
        self.status = JobStatusStore(fleet.status_table(), tier=tier.name,
                                     ttl_days=fleet.config.status.ttl_days)
        self.slots = threading.Semaphore(fleet.batch_parallel)
        self.stopping = threading.Event()
        self.kill = threading.Event()
        self.jobs: set[threading.Thread] = set()
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"batch-{tier.name}")
        self.backoff_base = float(os.environ.get(names.WORKER_BACKOFF_BASE_SECONDS) or 2.0)
        self.backoff_max = float(os.environ.get(names.WORKER_BACKOFF_MAX_SECONDS) or 900.0)
        self.log_path = fleet.run_dir / f"{tier.name}.log"
        self.log = self.log_path.open("a", encoding="utf-8")

    def start(self) -> None:
        self.thread.start()

    def write_log(self, text: str) -> None:
        with self.lock:
            self.log.write(text if text.endswith("\n") else text + "\n")
            self.log.flush()

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.slots.acquire(timeout=0.5):
                continue
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=POLL_WAIT_SECONDS,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as exc:  # moto stopping, or a transient error: try again shortly
                self.slots.release()
                self.write_log(f"receive failed: {exc}")
                self.stopping.wait(1)
                continue
            if not messages:
                self.slots.release()
                continue
            if self.stopping.is_set():
                self.slots.release()
                self._quietly(self.sqs.change_message_visibility, QueueUrl=self.queue_url,
                              ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0)
                break
            job = threading.Thread(target=self._job, args=(messages[0],), daemon=True)
            with self.lock:
                self.jobs.add(job)
            job.start()

    def _job(self, message: dict[str, Any]) -> None:
        try:
            self._run_one(message)
        except Exception as exc:  # never lose the poller over one message; it reappears after visibility
            self.write_log(f"job handling failed: {exc!r}")
        finally:
            self.slots.release()
            with self.lock:
                self.jobs.discard(threading.current_thread())

    def _run_one(self, message: dict[str, Any]) -> None:
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        envelope_file = self.fleet.run_dir / f"envelope-{message['MessageId']}.json"
        envelope_file.write_text(message["Body"])
        env = self.fleet.base_env()
        # The Batch job definition's environment, plus what AWS Batch sets and the local handlers.
        env.update(names.batch_job_environment(
            tier=self.tier.name, status_table=self.fleet.table_name,
            status_ttl_days=self.fleet.config.status.ttl_days, max_job_seconds=self.tier.max_job_seconds,
            region=self.fleet.region,
        ), **{names.WORKER_HANDLERS: self.fleet.handlers, names.AWS_BATCH_JOB_ATTEMPT: str(attempt),
              names.AWS_BATCH_JOB_ID: f"local-{message['MessageId']}"})
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run-one", "--envelope-file", str(envelope_file)],
            env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, preexec_fn=_new_session_with_parent_death_signal,
        )
        with self.lock:
            self.procs.add(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            with self.lock:
                self.procs.discard(proc)
            envelope_file.unlink(missing_ok=True)
        self.write_log(stderr)
        outcome: dict[str, Any] = {}
        for line in stdout.splitlines():
            self.write_log(line)
            if summary := job_summary(self.tier.name, line):
                self.fleet.out.line(summary)
                outcome = json.loads(line)
        receipt = message["ReceiptHandle"]
        code = proc.returncode
        if code == 0:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        elif code < 0 and self.kill.is_set():
            # Killed by the shutdown: the job did not fail, hand the message back.
            self._quietly(self.sqs.change_message_visibility, QueueUrl=self.queue_url,
                          ReceiptHandle=receipt, VisibilityTimeout=0)
        elif code == EXIT_PERMANENT or attempt >= self.tier.max_receive_count:
            error_type = outcome.get("errorType") or f"ExitCode{code}"
            error_message = outcome.get("errorMessage") or f"run-one exited with code {code}"
            self._dead_letter(message, attempt, error_type, error_message)
        else:
            delay = backoff_seconds(attempt, self.backoff_base, self.backoff_max, random.random())
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt,
                                               VisibilityTimeout=delay)

    def _dead_letter(self, message: dict[str, Any], attempt: int, error_type: str,
                     error_message: str) -> None:
        """As the worker does: the envelope to the DLQ with the reason attributes, then delete."""
        try:
            envelope = parse_envelope(message["Body"])
            job_type: str = envelope.job_type
        except PermanentError:
            envelope, job_type = None, UNKNOWN_TYPE
        attributes, _dropped = dead_letter_attributes(
            send_ready_attributes(message.get("MessageAttributes", {})), error_type=error_type,
            error_message=error_message, attempt=attempt,
            worker_id=f"local-batch-{self.tier.name}", failed_at=iso_now(), job_type=job_type,
        )
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=message["Body"],
                              MessageAttributes=attributes)
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if envelope is not None:
            self._quietly(self.status.mark_dead_lettered, envelope.job_id, envelope.job_type, attempt,
                          f"{error_type}: {error_message}")

    def _quietly(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            self.write_log(f"{getattr(fn, '__name__', fn)} failed: {exc}")

    def stop(self, hard: threading.Event) -> None:
        """Stop receiving; let running jobs finish within the tier's stop timeout, then kill them."""
        self.stopping.set()
        self.thread.join(timeout=POLL_WAIT_SECONDS + 10)
        deadline = time.monotonic() + self.tier.stop_timeout_seconds
        while time.monotonic() < deadline and not hard.is_set():
            with self.lock:
                if not self.jobs:
                    break
            time.sleep(0.1)
        self.kill.set()
        with self.lock:
            procs, jobs = list(self.procs), list(self.jobs)
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)
        for job in jobs:
            job.join(timeout=10)
        self.fleet.out.line(f"stopped the batch poller of tier {self.tier.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobfleet_tools local",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dev", help="environment to run (default: dev)")
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--config-dir", type=Path, default=ENVIRONMENTS_DIR,
                        help="directory of defaults.toml + <env>.toml (default: cdk_app/environments)")
    parser.add_argument("--handlers", default="",
                        help="extra handler modules (comma-separated), appended to WORKER_HANDLERS")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where logs go (default: a new temporary directory)")
    args = parser.parse_args(argv)
    out = Output(sys.stdout)
    try:
        config = load_environment(args.env, args.config_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = os.environ.get(names.WORKER_HANDLERS) or DEFAULT_HANDLERS
    handlers = ",".join(m.strip() for m in f"{base},{args.handlers}".split(",") if m.strip())
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="jobfleet-local-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    fleet = LocalFleet(config, port=args.port or free_port(), handlers=handlers, run_dir=run_dir, output=out)
    hard = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if fleet.stop_event.is_set():
            hard.set()  # second Ctrl-C: no more waiting
        else:
            out.line(f"{signal.Signals(signum).name}: stopping (workers drain; Ctrl-C again to kill)")
        fleet.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        fleet.start()
        if not fleet.stop_event.is_set():
            fleet.banner()
            fleet.wait()
    except StartupError as exc:
        out.line(f"error: {exc}")
        fleet.exit_code = 1
    finally:
        fleet.shutdown(hard)
    out.line("local mode stopped")
    return fleet.exit_code

