"""Local mode's stand-in for the feed function + AWS Batch on one batch tier: receive from the batch
queue, run `python -m worker run-one` per message with the Batch job definition's environment; exit 0
deletes the message, exit 2 or a failure on the tier's last allowed attempt dead-letters it with the
worker's reason attributes, other failures retry after the worker's backoff."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.observability import UNKNOWN_TYPE
from worker.policy import backoff_seconds
from worker.run_one import EXIT_PERMANENT
from worker.transport import send_ready_attributes

from jobfleet_config.config import EnvironmentConfig, TierConfig
from jobfleet_contract import environment as names
from jobfleet_contract.attributes import dead_letter_attributes
from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.errors import PermanentError
from jobfleet_contract.status import JobStatusStore, Run
from jobfleet_contract.timestamps import iso_now
from jobfleet_tools.local.completion import LocalCompletion
from jobfleet_tools.local.environment import POLL_WAIT_SECONDS, batch_job_env
from jobfleet_tools.local.processes import (
    REPO,
    Output,
    job_summary,
    new_session_with_parent_death_signal,
    signal_group,
)
from jobfleet_tools.local.resources import LocalAws

BATCH_PARALLEL = 2  # run-one processes at once per batch tier (AWS Batch runs many; two show it)


class BatchPoller:
    """Stands in for the feed function + AWS Batch on one batch tier: one run-one process per message."""

    def __init__(self, aws: LocalAws, config: EnvironmentConfig, tier: TierConfig, *,
                 handlers: tuple[str, ...], completion: LocalCompletion, run_dir: Path, out: Output,
                 parallel: int = BATCH_PARALLEL) -> None:
        self.aws = aws
        self.config = config
        self.tier = tier
        self.handlers = handlers
        self.completion = completion
        self.run_dir = run_dir
        self.out = out
        self.queue_url = aws.queue_urls[tier.name]
        self.dlq_url = aws.dlq_urls[tier.name]
        self.sqs = aws.client("sqs")
        self.status = JobStatusStore(aws.status_table(), tier=tier.name, ttl_days=config.status.ttl_days)
        self.slots = threading.Semaphore(parallel)
        self.stopping = threading.Event()
        self.kill = threading.Event()
        self.jobs: set[threading.Thread] = set()
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"batch-{tier.name}")
        self.backoff_base = float(os.environ.get(names.WORKER_BACKOFF_BASE_SECONDS) or 2.0)
        self.backoff_max = float(os.environ.get(names.WORKER_BACKOFF_MAX_SECONDS) or 900.0)
        self.log_path = run_dir / f"{tier.name}.log"
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
        envelope_file = self.run_dir / f"envelope-{message['MessageId']}.json"
        envelope_file.write_text(message["Body"])
        env = batch_job_env(self.aws, self.config, self.tier, self.handlers, self.completion,
                            attempt=attempt, job_id=f"local-{message['MessageId']}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run-one", "--envelope-file", str(envelope_file)],
            env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, preexec_fn=new_session_with_parent_death_signal,
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
                self.out.line(summary)
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
            # The run run-one reported under (its stand-in Batch job id for this message).
            self._quietly(self.status.mark_dead_lettered, envelope.job_id, envelope.job_type, attempt,
                          f"{error_type}: {error_message}", run=Run(f"local-{message['MessageId']}"))

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
            signal_group(proc, signal.SIGKILL)
        for job in jobs:
            job.join(timeout=10)
        self.out.line(f"stopped the batch poller of tier {self.tier.name}")
