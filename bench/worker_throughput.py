"""Throughput against the alternatives a team would pick: Celery 5 with its SQS transport, and the seeds'
loop (receive 1, process, delete 1, sequential).

One moto server; each contender consumes its own queue on it, in its own process, through a counting HTTP
proxy (so SQS calls are counted at the wire the same way for boto3 and for kombu's pycurl client); a
feeder thread keeps ~30 messages queued. Handler: 50 ms sleep (I/O). JobFleet and Celery run 16 at a
time (JobFleet: WORKER_CONCURRENCY=16; Celery: threads pool, concurrency 16, acks_late so a message is
deleted after its task like JobFleet's; long polling 20 s for both). Prints msg/s, SQS calls per message,
worker CPU-seconds per message, and the ratios last.
Run: ``.venv/bin/python bench/worker_throughput.py``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from pathlib import Path

from _harness import (
    REGION,
    CountingProxy,
    child_or_main,
    cpu_seconds,
    envelopes,
    feed,
    make_queue,
    peak_rss_mib,
    run_contender,
    sqs_client,
    start_moto,
)

MESSAGES = {"baseline": 150, "jobfleet": 600, "celery": 600}
HANDLER_SECONDS = 0.05
CONCURRENCY = 16


def baseline(queue_url: str) -> dict:
    client = sqs_client()
    done = 0
    started, cpu = time.monotonic(), cpu_seconds()
    while done < MESSAGES["baseline"]:
        messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=20)
        for message in messages.get("Messages", []):
            json.loads(message["Body"])
            time.sleep(HANDLER_SECONDS)
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            done += 1
    return {"seconds": time.monotonic() - started, "cpu": cpu_seconds() - cpu}


def jobfleet(queue_url: str, dlq_url: str) -> dict:
    from worker import job
    from worker.config import WorkerConfig
    from worker.lifecycle import TaskProtection
    from worker.memory import memory_reader
    from worker.observability import Metrics
    from worker.runtime import Worker
    from worker.transport import SqsTransport
    from worker.transport import sqs_client as worker_sqs_client

    finished = {"count": 0}
    lock = threading.Lock()

    @job("bench.sleep")
    def sleep_job(payload, ctx):
        time.sleep(HANDLER_SECONDS)
        with lock:
            finished["count"] += 1

    config = WorkerConfig(
        queue_url=queue_url,
        dlq_url=dlq_url,
        concurrency=CONCURRENCY,
        tier="bench",
        health_file="/tmp/jobfleet-bench.health",
    )
    with open("/dev/null", "w") as sink:
        worker = Worker(
            config,
            SqsTransport(worker_sqs_client(), queue_url, dlq_url),
            memory_reader=memory_reader(),
            protection=TaskProtection(None, 1),
            metrics=Metrics("bench", sink),
        )
        started, cpu = time.monotonic(), cpu_seconds()
        threading.Thread(target=worker.run, daemon=True).start()
        while not (finished["count"] == MESSAGES["jobfleet"] and worker.held_count == 0):  # run *and* deleted
            time.sleep(0.01)
        result = {"seconds": time.monotonic() - started, "cpu": cpu_seconds() - cpu}
        worker.request_stop("benchmark done")
    return result


def _celery_app(broker_endpoint: str, queue_url: str):
    from celery import Celery

    app = Celery("bench", broker=f"sqs://bench:bench@{broker_endpoint.split('//', 1)[1]}")
    app.conf.update(
        broker_transport_options={
            "region": REGION,
            "is_secure": False,
            "wait_time_seconds": 20,
            "predefined_queues": {
                "celery": {"url": queue_url, "access_key_id": "bench", "secret_access_key": "bench"}
            },
        },
        task_default_queue="celery",
        task_acks_late=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
    )
    return app


def celery_bodies(sqs, endpoint: str, queue_url: str, count: int) -> list[str]:
    """``count`` Celery task messages for ``bench.sleep`` as kombu's SQS transport writes them: one is
    sent through Celery and read back raw, the rest are copies with their own task ids."""
    app = _celery_app(endpoint, queue_url)
    app.send_task("bench.sleep")
    raw = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"][0]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=raw["ReceiptHandle"])
    template = json.loads(base64.b64decode(raw["Body"]))
    bodies = []
    for _ in range(count):
        task_id = str(uuid.uuid4())
        message = {
            **template,
            "headers": {**template["headers"], "id": task_id, "root_id": task_id},
            "properties": {
                **template["properties"],
                "correlation_id": task_id,
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        bodies.append(base64.b64encode(json.dumps(message).encode()).decode())
    return bodies


def celery(queue_url: str, _dlq_url: str) -> None:
    """Runs a Celery worker in this process's main thread until every message ran and was deleted, then
    prints the result and exits (a Celery worker has no "stop after N" of its own)."""
    app = _celery_app(os.environ["AWS_ENDPOINT_URL"], queue_url)
    finished = {"count": 0}
    lock = threading.Lock()

    @app.task(name="bench.sleep")
    def sleep_task():
        time.sleep(HANDLER_SECONDS)
        with lock:
            finished["count"] += 1

    moto = sqs_client(os.environ["BENCH_MOTO_ENDPOINT"])  # uncounted: straight to moto
    direct_url = queue_url.replace(os.environ["AWS_ENDPOINT_URL"], os.environ["BENCH_MOTO_ENDPOINT"])
    started, cpu = time.monotonic(), cpu_seconds()

    def watch() -> None:
        while finished["count"] < MESSAGES["celery"]:
            time.sleep(0.01)
        while True:  # and deleted (acks_late: the delete follows the task)
            attrs = moto.get_queue_attributes(QueueUrl=direct_url, AttributeNames=["All"])["Attributes"]
            if (
                int(attrs["ApproximateNumberOfMessages"])
                + int(attrs["ApproximateNumberOfMessagesNotVisible"])
                == 0
            ):
                break
            time.sleep(0.05)
        result = {
            "seconds": time.monotonic() - started,
            "cpu": cpu_seconds() - cpu,
            "peak_rss_mib": peak_rss_mib(),
        }
        print(json.dumps(result), flush=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    app.Worker(
        pool="threads",
        concurrency=CONCURRENCY,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    ).start()


def child(mode: str, queue_url: str, dlq_url: str) -> None:
    if mode == "celery":
        celery(queue_url, dlq_url)
        return
    result = baseline(queue_url) if mode == "baseline" else jobfleet(queue_url, dlq_url)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result), flush=True)


LABELS = {
    "baseline": "seeds' loop (receive 1, sequential)",
    "celery": f"Celery 5 SQS (threads, concurrency {CONCURRENCY})",
    "jobfleet": f"JobFleet (concurrency {CONCURRENCY})",
}


def main() -> None:
    server, endpoint = start_moto()
    proxy = CountingProxy(endpoint)
    results, calls = {}, {}
    try:
        sqs = sqs_client()
        for mode in ("baseline", "celery", "jobfleet"):
            queue_url, dlq_url = make_queue(sqs)
            count = MESSAGES[mode]
            if mode == "celery":
                bodies = celery_bodies(sqs, endpoint, queue_url, count)
            else:
                bodies = envelopes(count, "bench.sleep", {})
            feeder = feed(sqs, queue_url, bodies)
            proxy.take()
            results[mode] = run_contender(
                Path(__file__),
                mode,
                proxy.route(queue_url),
                proxy.route(dlq_url),
                {"AWS_ENDPOINT_URL": proxy.url, "BENCH_MOTO_ENDPOINT": endpoint},
            )
            calls[mode] = proxy.take()
            feeder.join()
    finally:
        proxy.stop()
        server.stop()
    print(
        f"handler: {HANDLER_SECONDS * 1000:.0f} ms sleep; messages fed keeping ~30 queued; moto server on "
        "127.0.0.1; SQS calls counted at a proxy in front of it"
    )
    print(
        f"{'contender':<44}{'msgs':>6}{'msg/s':>8}{'SQS calls/msg':>15}{'CPU ms/msg':>12}{'peak RSS MiB':>14}"
    )
    for mode, label in LABELS.items():
        r, n = results[mode], MESSAGES[mode]
        print(
            f"{label:<44}{n:>6}{n / r['seconds']:>8.1f}{sum(calls[mode].values()) / n:>15.3f}"
            f"{r['cpu'] * 1000 / n:>12.2f}{r['peak_rss_mib']:>14.1f}"
        )
    for mode in LABELS:
        print(f"  {mode} calls by action: {dict(sorted(calls[mode].items()))}")
    print(
        "moto bounds msg/s for JobFleet and Celery alike (16 slots x 50 ms allow 320 msg/s; each call to the "
        "emulator costs tens of ms here); SQS calls/msg and CPU/msg are the figures that carry over to SQS."
    )
    rate = {mode: MESSAGES[mode] / results[mode]["seconds"] for mode in LABELS}
    per_msg = {mode: sum(calls[mode].values()) / MESSAGES[mode] for mode in LABELS}
    cpu = {mode: results[mode]["cpu"] / MESSAGES[mode] for mode in LABELS}
    print(f"ratio jobfleet/celery msg/s: {rate['jobfleet'] / rate['celery']:.2f}")
    print(f"ratio jobfleet/celery SQS calls per message: {per_msg['jobfleet'] / per_msg['celery']:.2f}")
    print(f"ratio jobfleet/celery CPU per message: {cpu['jobfleet'] / cpu['celery']:.2f}")
    print(f"ratio jobfleet/seeds' loop msg/s: {rate['jobfleet'] / rate['baseline']:.2f}")


if __name__ == "__main__":
    child_or_main(child, main)
