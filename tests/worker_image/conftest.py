"""Worker test fixtures: fresh queues per test on the shared moto server, and an in-process worker runner."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SUPPORT_DIR = Path(__file__).parent / "support"
WORKER_IMAGE_DIR = Path(__file__).resolve().parents[2] / "worker_image"
# A worker subprocess imports this checkout's worker and contract, whatever the venv has installed.
CHECKOUT_PATH = [str(WORKER_IMAGE_DIR), str(WORKER_IMAGE_DIR.parent)]
# The test handlers must be importable under one name, in-process and in subprocesses alike.
sys.path.insert(0, str(SUPPORT_DIR))

import jobfleet_test_jobs  # noqa: E402  (registers the test.* job types)
from worker.config import WorkerConfig  # noqa: E402
from worker.lifecycle import TaskProtection  # noqa: E402
from worker.memory import MemoryReading  # noqa: E402
from worker.observability import Metrics  # noqa: E402
from worker.runtime import Worker  # noqa: E402
from worker.transport import SqsTransport, sqs_client  # noqa: E402

from jobfleet_tools.local.processes import free_port  # noqa: E402
from tests.support.polling import wait_for  # noqa: E402  (imported from here by the worker tests)

TEST_JOBS_MODULE = jobfleet_test_jobs.__name__


def dead_endpoint() -> str:
    """An endpoint URL on 127.0.0.1 where nothing listens (a port that was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def served_api(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`python -m worker api` of this checkout as a real process (uvicorn) with ``env`` (its PORT);
    yields the API's URL once /healthz answers, terminates it after."""
    env = {**env, "PYTHONPATH": os.pathsep.join(CHECKOUT_PATH)}
    process = subprocess.Popen([sys.executable, "-m", "worker", "api"], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{env['PORT']}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(lambda: process.poll() is not None or healthy(), 30, "the API answers /healthz")
        assert process.poll() is None, "the API exited on start"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def status_table(jobs_table):
    """A fresh job-status table on the moto server: (table name, JobStatusStore on it)."""
    from jobfleet_contract.status import JobStatusStore

    return jobs_table.name, JobStatusStore(jobs_table, tier="test")


@dataclass
class Queues:
    url: str
    dlq_url: str


@pytest.fixture()
def make_queues(sqs) -> Callable[..., Queues]:
    def make(visibility_timeout: int = 2) -> Queues:
        name = f"q-{uuid.uuid4().hex[:12]}"
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})[
            "QueueUrl"
        ]
        return Queues(url, dlq)

    return make


def send_job(
    sqs,
    queue_url: str,
    job_type: str,
    payload: dict,
    job_id: str | None = None,
    attributes: dict | None = None,
) -> str:
    job_id = job_id or uuid.uuid4().hex
    body = json.dumps(
        {"jobId": job_id, "type": job_type, "payload": payload, "submittedAt": "2024-05-01T12:00:00Z"}
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes or {})
    return job_id


def drain_queue(sqs, queue_url: str) -> list[dict]:
    """Everything currently receivable (each message made invisible for 30 s, so it is read once)."""
    found = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not batch:
            return found
        found.extend(batch)


def queue_counts(sqs, queue_url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return {
        key: int(attrs[key])
        for key in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    }


def records(record_dir: Path, event: str) -> list[tuple[str, int]]:
    """(jobId, attempt) of every marker the test handlers wrote for an event."""
    if not record_dir.exists():
        return []
    out = []
    for path in record_dir.iterdir():
        parts = path.name.split("--")
        if parts[0] == event:
            out.append((parts[1], int(parts[2])))
    return out


class FixedMemory:
    """An injectable memory reader whose reading the test sets."""

    def __init__(self, fraction: float = 0.1, limit: int = 1 << 30) -> None:
        self.limit = limit
        self.fraction = fraction
        self.reads = 0

    def __call__(self) -> MemoryReading:
        self.reads += 1
        return MemoryReading(int(self.fraction * self.limit), self.limit)


@dataclass
class RunningWorker:
    worker: Worker
    thread: threading.Thread
    stream: io.StringIO
    result: dict

    def metrics(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def outcomes(self, outcome: str) -> list[dict]:
        return [m for m in self.metrics() if m.get("event") == "job" and m.get("outcome") == outcome]

    def stop(self, timeout: float = 30) -> int:
        self.worker.request_stop("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        return self.result["exit"]


@pytest.fixture()
def start_worker(moto_endpoint, tmp_path) -> Iterator[Callable[..., RunningWorker]]:
    started: list[RunningWorker] = []

    def start(
        queues: Queues,
        *,
        memory_reader=None,
        transport=None,
        jitter=None,
        completion=None,
        status_store=None,
        **overrides,
    ) -> RunningWorker:
        settings = dict(
            queue_url=queues.url,
            dlq_url=queues.dlq_url,
            max_receive_count=3,
            concurrency=4,
            handler_modules=(TEST_JOBS_MODULE,),
            poll_wait_seconds=1,
            backoff_base_seconds=1,
            backoff_max_seconds=4,
            stop_timeout_seconds=10,
            tier="test",
            health_file=str(tmp_path / "health"),
            worker_id="test-worker",
        )
        settings.update(overrides)
        config = WorkerConfig(**settings)
        stream = io.StringIO()
        worker = Worker(
            config,
            transport or SqsTransport(sqs_client(read_timeout=10), queues.url, queues.dlq_url),
            memory_reader=memory_reader or FixedMemory(),
            protection=TaskProtection(None, 1),
            metrics=Metrics("test", stream),
            completion=completion,
            status_store=status_store,
            **({"jitter": jitter} if jitter else {}),
        )
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault("exit", worker.run()), daemon=True)
        thread.start()
        running = RunningWorker(worker, thread, stream, result)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def worker_env(queues: Queues, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a real `python -m worker run` subprocess against the moto server."""
    env = dict(os.environ)
    env.update(
        QUEUE_URL=queues.url,
        DLQ_URL=queues.dlq_url,
        MAX_RECEIVE_COUNT="5",
        WORKER_CONCURRENCY="2",
        WORKER_HANDLERS=TEST_JOBS_MODULE,
        WORKER_POLL_WAIT_SECONDS="1",
        WORKER_STOP_TIMEOUT_SECONDS="20",
        HEALTH_FILE=str(tmp_path / "health"),
        TIER="test",
        PYTHONUNBUFFERED="1",
        JOB_MAX_SECONDS="30",
        PYTHONPATH=os.pathsep.join([*CHECKOUT_PATH, str(SUPPORT_DIR)]),
    )
    env.pop("ECS_AGENT_URI", None)
    env.update(extra)
    return env
