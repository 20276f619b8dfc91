"""Local mode's batch tier: the deployed feed, run end to end on this machine.

    tier queue --LocalFeed (the event source mapping)--> batch_submit.handler (the real function,
    in its own process with the stack's environment) --SubmitJob--> moto's Batch API
    --LocalBatchExecutor--> `python -m worker run-one ...` (the job definition's command and
    environment, its retry strategy) --> status table; a finally failed job --> tier DLQ

What stands in for AWS: `LocalFeed` does what Lambda's SQS event source mapping does (long-poll up
to 10 messages, invoke the function with a Lambda-shaped event, delete the messages not reported
as batch item failures, leave those for redelivery after the visibility timeout). moto's
Docker-less Batch (`batch_simple`) stores jobs and job definitions (it marks every job SUCCEEDED
at once and runs nothing, so the executor ignores its statuses). `LocalBatchExecutor` does what
Batch and the failure rule do: it runs each new job of the tier's job queue as a real subprocess
with `Ref::` parameters substituted into the job definition's command, applies the job
definition's retry strategy, and sends a finally failed job to the DLQ in the failure route's
message shape (docs/batch.md).
"""

from __future__ import annotations

import fnmatch
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobfleet_config.config import EnvironmentConfig, TierConfig
from jobfleet_contract import batch as batch_job
from jobfleet_contract import environment as names
from jobfleet_contract.timestamps import iso_now
from jobfleet_tools.local.completion import LocalCompletion
from jobfleet_tools.local.environment import POLL_WAIT_SECONDS, base_env, batch_definition_env, batch_feed_env
from jobfleet_tools.local.processes import (
    REPO,
    Output,
    job_summary,
    new_session_with_parent_death_signal,
    signal_group,
)
from jobfleet_tools.local.resources import LocalAws

BATCH_PARALLEL = 2  # jobs running at once per batch tier (AWS Batch runs many; two show it)
FEED_BATCH_SIZE = 10  # = stacks/constructs/batch_feed.py BATCH_SIZE
FEED_HANDLER = "batch_submit.handler.handler"
FEED_TIMEOUT_SECONDS = 60  # the feed function's timeout
JOB_POLL_SECONDS = 0.5
# What Batch says when it stops an attempt at the job definition's timeout.
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
EXITED_REASON = "Essential container in task exited"
# What the failure route writes (stacks/constructs/batch_failure_route.py).
FAILURE_SOURCE, FAILURE_ERROR_TYPE = "aws.batch", "BatchJobFailed"


def retry_strategy(config: EnvironmentConfig) -> dict[str, Any]:
    """The job definition's retry strategy, as the batch stack configures it (Batch API spelling)."""
    reclaimed = (batch_job.FARGATE_SPOT_RECLAIMED if config.batch.compute == "fargate-spot"
                 else batch_job.EC2_SPOT_RECLAIMED)
    return {"attempts": config.batch.spot_retry_attempts,
            "evaluateOnExit": [{"onStatusReason": reclaimed, "action": "RETRY"},
                               {"onReason": "*", "action": "EXIT"}]}


def retry_action(evaluate_on_exit: list[Mapping[str, str]], *, status_reason: str, reason: str,
                 exit_code: int | None) -> str:
    """Batch's evaluateOnExit: the first condition whose every pattern matches decides ("RETRY" or
    "EXIT"); a pattern may end with `*`; when none matches, the job is retried."""
    values = {"onStatusReason": status_reason, "onReason": reason,
              "onExitCode": "" if exit_code is None else str(exit_code)}
    for condition in evaluate_on_exit:
        patterns = {key: value for key, value in condition.items() if key in values}
        if all(fnmatch.fnmatchcase(values[key], pattern) for key, pattern in patterns.items()):
            return str(condition["action"]).upper()
    return "RETRY"


def lambda_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message as Lambda's SQS event gives it to the function."""
    attributes = {name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                         "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
                  for name, value in message.get("MessageAttributes", {}).items()}
    for value in attributes.values():
        for key in ("stringValue", "binaryValue"):
            if value[key] is None:
                del value[key]
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": attributes, "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


def enable_docker_less_batch(endpoint: str) -> None:
    """moto's Batch without Docker (batch_simple): SubmitJob stores the job and runs nothing."""
    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"batch": {"use_docker": False}}).encode())
    urllib.request.urlopen(request, timeout=10).close()


class LocalBatchTier:
    """One batch tier's feed and executor, and its Batch resources in moto."""

    def __init__(self, aws: LocalAws, config: EnvironmentConfig, tier: TierConfig, *,
                 handlers: tuple[str, ...], completion: LocalCompletion, run_dir: Path, out: Output,
                 parallel: int = BATCH_PARALLEL) -> None:
        self.aws, self.config, self.tier, self.out = aws, config, tier, out
        self.run_dir = run_dir
        self.name = config.resource_name(tier.name)
        self.queue_url = aws.queue_urls[tier.name]
        self.dlq_url = aws.dlq_urls[tier.name]
        self.sqs = aws.client("sqs")
        self.batch = aws.client("batch")
        self.definition_env = batch_definition_env(aws, config, tier, handlers, completion)
        self.job_queue_arn = self.job_definition_arn = ""
        self.log_path = run_dir / f"{tier.name}.log"
        self.log = self.log_path.open("a", encoding="utf-8")
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.kill = threading.Event()
        self.slots = threading.Semaphore(parallel)
        self.seen: set[str] = set()
        self.jobs: set[threading.Thread] = set()
        self.procs: set[subprocess.Popen] = set()
        self.threads = [threading.Thread(target=self._feed, daemon=True, name=f"feed-{tier.name}"),
                        threading.Thread(target=self._execute, daemon=True, name=f"batch-{tier.name}")]

    # --- resources -----------------------------------------------------------------------------

    def create(self) -> None:
        """The job queue and the job definition, as the batch stack defines them."""
        enable_docker_less_batch(self.aws.endpoint)
        role = self.aws.client("iam").create_role(
            RoleName=f"{self.name}-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        environment = self.batch.create_compute_environment(
            computeEnvironmentName=self.name, type="UNMANAGED", state="ENABLED", serviceRole=role)
        self.job_queue_arn = self.batch.create_job_queue(
            jobQueueName=self.name, state="ENABLED", priority=1, computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])["jobQueueArn"]
        self.job_definition_arn = self.batch.register_job_definition(
            jobDefinitionName=self.name, type="container",
            parameters=dict(batch_job.DEFAULT_PARAMETERS),
            containerProperties={
                "image": "jobfleet-worker", "command": list(batch_job.COMMAND),
                "resourceRequirements": [{"type": "VCPU", "value": str(self.tier.cpu / 1024)},
                                         {"type": "MEMORY", "value": str(self.tier.memory_mib)}],
                "environment": [{"name": k, "value": v} for k, v in self.definition_env.items()]},
            retryStrategy=retry_strategy(self.config),
            timeout={"attemptDurationSeconds": self.tier.max_job_seconds},
        )["jobDefinitionArn"]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def write_log(self, text: str) -> None:
        with self.lock:
            self.log.write(text if text.endswith("\n") else text + "\n")
            self.log.flush()

    # --- the event source mapping --------------------------------------------------------------

    def _feed(self) -> None:
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        env = batch_feed_env(self.aws, job_queue=self.job_queue_arn, job_definition=self.job_definition_arn,
                             job_name=self.name)
        while not self.stopping.is_set():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=FEED_BATCH_SIZE,
                    WaitTimeSeconds=POLL_WAIT_SECONDS, MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"]).get("Messages", [])
                if messages:
                    self._invoke_feed(messages, queue_arn, env)
            except Exception as exc:  # moto stopping, or a transient error: try again shortly
                self.write_log(f"feed: {exc!r}")
                self.stopping.wait(1)

    def _invoke_feed(self, messages: list[dict[str, Any]], queue_arn: str, env: dict[str, str]) -> None:
        event = {"Records": [lambda_record(m, queue_arn, self.aws.region) for m in messages]}
        result = subprocess.run(
            [sys.executable, "-m", "jobfleet_tools.local.lambda_invoke", FEED_HANDLER],
            input=json.dumps(event), env=env, cwd=REPO, capture_output=True, text=True,
            timeout=FEED_TIMEOUT_SECONDS, check=False)
        self.write_log(result.stderr)
        if result.returncode != 0:
            return  # a function error: Lambda deletes nothing, the whole batch is redelivered
        response = json.loads(result.stdout.splitlines()[-1])
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages) if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)

    # --- AWS Batch -----------------------------------------------------------------------------

    def _execute(self) -> None:
        while not self.stopping.is_set():
            try:
                summaries = self.batch.list_jobs(jobQueue=self.job_queue_arn)["jobSummaryList"]
            except Exception as exc:
                self.write_log(f"executor: {exc!r}")
                self.stopping.wait(1)
                continue
            new = sorted((s for s in summaries if s["jobId"] not in self.seen), key=lambda s: s["createdAt"])
            for summary in new:
                while not self.slots.acquire(timeout=0.5):
                    if self.stopping.is_set():
                        return
                if self.stopping.is_set():
                    self.slots.release()
                    return
                self.seen.add(summary["jobId"])
                job = threading.Thread(target=self._job, args=(summary["jobId"],), daemon=True)
                with self.lock:
                    self.jobs.add(job)
                job.start()
            self.stopping.wait(JOB_POLL_SECONDS)

    def _job(self, job_id: str) -> None:
        try:
            self._run_job(job_id)
        except Exception as exc:  # never lose the executor over one job
            self.write_log(f"job {job_id} handling failed: {exc!r}")
        finally:
            self.slots.release()
            with self.lock:
                self.jobs.discard(threading.current_thread())

    def _run_job(self, job_id: str) -> None:
        (job,) = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        (definition,) = self.batch.describe_job_definitions(
            jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
        container = definition["containerProperties"]
        command = batch_job.substitute(container["command"], job.get("parameters", {}),
                                       definition.get("parameters", {}))
        environment = {pair["name"]: pair["value"] for pair in container.get("environment", [])}
        strategy = definition.get("retryStrategy") or {"attempts": 1}
        timeout = definition.get("timeout", {}).get("attemptDurationSeconds")
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, int(strategy.get("attempts", 1)) + 1):
            exit_code, status_reason, reason = self._attempt(job_id, command, environment, attempt, timeout)
            attempts.append({"container": {"exitCode": exit_code, "reason": reason,
                                           "logStreamName": str(self.log_path)},
                             "statusReason": status_reason})
            if exit_code == 0 or self.kill.is_set():
                return
            if retry_action(strategy.get("evaluateOnExit", []), status_reason=status_reason, reason=reason,
                            exit_code=exit_code) == "EXIT":
                break
            self.write_log(f"job {job_id}: attempt {attempt} failed ({status_reason}); retrying")
        self._dead_letter(job, attempts)

    def _attempt(self, job_id: str, command: list[str], environment: dict[str, str], attempt: int,
                 timeout: float | None) -> tuple[int | None, str, str]:
        """One attempt as a real process: (exit code, Batch's status reason, the container's reason)."""
        if command[:1] == ["python"]:
            command = [sys.executable, *command[1:]]  # the image's python is this venv's here
        env = {**base_env(self.aws), **environment,
               names.AWS_BATCH_JOB_ID: job_id, names.AWS_BATCH_JOB_ATTEMPT: str(attempt)}
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=new_session_with_parent_death_signal)
        with self.lock:
            self.procs.add(proc)
        timed_out = False
        try:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                signal_group(proc, signal.SIGKILL)
                stdout, stderr = proc.communicate()
        finally:
            with self.lock:
                self.procs.discard(proc)
        self.write_log(stderr)
        for line in stdout.splitlines():
            self.write_log(line)
            if summary := job_summary(self.tier.name, line):
                self.out.line(summary)
        code = proc.returncode
        if timed_out:
            return None, TIMEOUT_REASON, ""
        if code < 0:
            # Killed from outside (not by the executor's timeout): what a reclaimed Spot host does.
            reclaimed = (batch_job.FARGATE_SPOT_RECLAIMED if self.config.batch.compute == "fargate-spot"
                         else batch_job.EC2_SPOT_RECLAIMED).rstrip("*")
            return None, f"{reclaimed} (local: run-one killed by signal {-code}) terminated.", ""
        return code, EXITED_REASON, ""

    def _dead_letter(self, job: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        """What the failure rule sends for a FAILED job: the envelope and the reason, in the body."""
        last = attempts[-1]
        exit_code = last["container"]["exitCode"]
        body = {"envelope": job.get("parameters", {}).get(batch_job.ENVELOPE_PARAMETER, ""), "failure": {
            "source": FAILURE_SOURCE, "errorType": FAILURE_ERROR_TYPE, "reason": last["statusReason"],
            "jobId": job["jobId"], "jobName": job["jobName"], "jobQueue": self.job_queue_arn,
            "jobDefinition": job["jobDefinition"], "exitCode": "" if exit_code is None else str(exit_code),
            "logStreamName": str(self.log_path), "failedAt": iso_now(), "attempts": attempts}}
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(body))
        self.out.line(f"[{self.tier.name}] batch job {job['jobId']} FAILED after {len(attempts)} "
                      f"attempt(s): {last['statusReason']} (exit code {body['failure']['exitCode'] or '-'}); "
                      f"sent to {self.dlq_url.rsplit('/', 1)[-1]}")

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, hard: threading.Event) -> None:
        """Stop feeding and starting jobs; let running jobs finish within the tier's stop timeout."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=POLL_WAIT_SECONDS + FEED_TIMEOUT_SECONDS)
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
        self.out.line(f"stopped the batch feed and executor of tier {self.tier.name}")

