"""Shared plumbing for the worker benchmarks: one moto server per run, each contender in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


class MotoProcess:
    """The moto server in a process of its own: sharing the benchmark's process (and so its GIL) with the
    feeder and the counting proxy would make the emulator slower still, and its cost the thing measured."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)


def start_moto() -> tuple[MotoProcess, str]:
    server = MotoProcess()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=server.endpoint,
    )
    return server, server.endpoint


def make_queue(sqs, visibility_timeout: int = 60) -> tuple[str, str]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)})[
        "QueueUrl"
    ]
    return url, dlq


def envelopes(count: int, job_type: str | Callable[[int], str], payload: dict) -> list[str]:
    """``count`` JobFleet envelopes; ``job_type`` may be a function of the job's number (mixed workloads)."""
    return [
        json.dumps(
            {
                "jobId": f"job-{i}",
                "type": job_type(i) if callable(job_type) else job_type,
                "payload": payload,
                "submittedAt": "2024-05-01T12:00:00Z",
            }
        )
        for i in range(count)
    ]


def fill(sqs, queue_url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        send_batch(sqs, queue_url, bodies[start : start + 10])


def feed(sqs, queue_url: str, bodies: list[str], depth: int = 30) -> threading.Thread:
    """Send ``bodies`` from a background thread, keeping about ``depth`` visible.

    moto's SQS costs O(queue length) per call (a ReceiveMessage on a 100-deep queue took ~0.5 s here),
    so a deep queue would make the emulator, not the consumer, the thing measured; a short bounded
    backlog (more than JobFleet's and Celery's 16 slots + one receive) keeps its per-call cost low and
    flat for every contender.
    """

    def run() -> None:
        sent = 0
        while sent < len(bodies):
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= depth:
                time.sleep(0.2)  # moto shares its process (and GIL) with this feeder: poll it gently
                continue
            send_batch(sqs, queue_url, bodies[sent : sent + 10])
            sent += 10

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def send_batch(sqs, queue_url: str, bodies: list[str]) -> None:
    """One SendMessageBatch (<= 10 bodies)."""
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
    )


def run_contender(
    script: Path, mode: str, queue_url: str, dlq_url: str, extra_env: dict | None = None
) -> dict:
    """Run ``script --child MODE`` in a fresh interpreter and return the JSON it prints last.

    The script hands its command line to ``child_or_main``, which reads these arguments back."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "worker_image"), str(REPO), str(REPO / "bench")]),
        **(extra_env or {}),
    }
    result = subprocess.run(
        [sys.executable, str(script), "--child", mode, queue_url, dlq_url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_or_main(child: Callable[[str, str, str], None], main: Callable[[], None]) -> None:
    """A benchmark script's entry point: ``child(mode, queue_url, dlq_url)`` when run_contender started
    it, else ``main()``."""
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def sqs_client(endpoint_url: str | None = None):
    return boto3.client("sqs", region_name=REGION, endpoint_url=endpoint_url)


class CountingProxy:
    """An HTTP proxy on 127.0.0.1 in front of the moto server that counts the SQS API calls through it.

    Every contender's consumer is pointed at the proxy (its endpoint and queue URL), the feeder talks to
    moto directly, so the count is the consumer's calls only, taken the same way for every client
    (boto3 or kombu's pycurl alike)."""

    def __init__(self, target: str) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        target_host = urlsplit(target).netloc
        proxy = self
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2] or _query_action(body)
                with proxy._lock:
                    proxy.calls[action] = proxy.calls.get(action, 0) + 1
                upstream = http.client.HTTPConnection(target_host, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The contender may exit mid-poll (Celery's child ends with os._exit).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = _forward

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, int]:
        """The calls counted since the last take, by action."""
        with self._lock:
            calls, self.calls = self.calls, {}
        return calls

    def route(self, queue_url: str) -> str:
        """The same queue, addressed through this proxy."""
        from urllib.parse import urlsplit

        parts = urlsplit(queue_url)
        return f"{self.url}{parts.path}"

    def stop(self) -> None:
        self._server.shutdown()


def _query_action(body: bytes) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body.decode(errors="replace")).get("Action", ["?"])[0]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
