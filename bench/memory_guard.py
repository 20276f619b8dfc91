"""Memory guard under a mixed workload: light jobs and ~100 MiB jobs interleaved, sizes unknown in advance,
against a 600 MiB limit.

Contenders, each in its own process consuming the same workload from its own queue on one moto server:
fixed-concurrency pools (the same worker with memory admission switched off and a limit it never
approaches, ``WORKER_CONCURRENCY`` = 4, 5, 6, 8: what a team would tune by hand) and JobFleet at concurrency
16 with the memory guard measuring its RSS against 600 MiB. Reports each one's peak RSS (getrusage: the
process's high-water mark; jobs run as threads, so the process is the whole tree) and throughput; the
baseline is the fastest pool that stayed under the limit in this run. Prints
``ratio: <JobFleet jobs/s / best fitting pool jobs/s>`` last.
Run: ``.venv/bin/python bench/memory_guard.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from _harness import (
    child_or_main,
    envelopes,
    fill,
    make_queue,
    peak_rss_mib,
    run_contender,
    sqs_client,
    start_moto,
)

JOBS = 80
HEAVY_EVERY = 2  # every other job is heavy: 40 heavy, 40 light
HEAVY_MIB = 100
LIGHT_SECONDS = 0.05
LIMIT_MIB = 600
POOLS = (4, 5, 6, 8)
ROUNDS = 2  # contenders alternate; each keeps its fastest round and its highest peak (shared 2-core host)
GUARDED_CONCURRENCY = 16
# glibc otherwise raises its mmap threshold after the first big free, keeping later blocks on the heap
# where RSS never shrinks; the image sets the same (see Dockerfile).
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def job_type(i: int) -> str:
    return "bench.heavy" if i % HEAVY_EVERY == HEAVY_EVERY - 1 else "bench.light"


def parse_like_a_big_document() -> None:
    """~100 MiB built up over ~0.5 s in 10 MiB chunks (touched, so resident), held 0.3 s, released."""
    chunks = []
    for _ in range(HEAVY_MIB // 10):
        chunks.append(b"x" * (10 * 1024 * 1024))
        time.sleep(0.05)
    time.sleep(0.3)
    del chunks


def call_an_api() -> None:
    buffer = b"x" * (256 * 1024)
    time.sleep(LIGHT_SECONDS)
    del buffer


def consume(queue_url: str, dlq_url: str, concurrency: int, guarded: bool) -> dict:
    from worker import job
    from worker.config import WorkerConfig
    from worker.lifecycle import TaskProtection
    from worker.memory import memory_reader
    from worker.observability import Metrics
    from worker.runtime import Worker
    from worker.transport import SqsTransport, sqs_client

    finished = {"count": 0}
    lock = threading.Lock()

    def counted(work):
        def handler(payload, ctx):
            work()
            with lock:
                finished["count"] += 1

        return handler

    job("bench.heavy")(counted(parse_like_a_big_document))
    job("bench.light")(counted(call_an_api))
    if not guarded:
        # A fixed pool: the same worker, admitting whatever a free slot allows, against a limit it
        # never approaches (so the hysteresis never pauses it either).
        from worker.policy import FootprintModel

        FootprintModel.admits = lambda *_args: True
    limit_mib = LIMIT_MIB if guarded else 1 << 20
    config = WorkerConfig(
        queue_url=queue_url,
        dlq_url=dlq_url,
        concurrency=concurrency,
        tier="bench",
        memory_limit_bytes=limit_mib * 1024 * 1024,
        health_file="/tmp/jobfleet-bench.health",
    )
    with open("/dev/null", "w") as sink:
        worker = Worker(
            config,
            SqsTransport(sqs_client(), queue_url, dlq_url),
            memory_reader=memory_reader(config.memory_limit_bytes),
            protection=TaskProtection(None, 1),
            metrics=Metrics("bench", sink),
        )
        started = time.monotonic()
        threading.Thread(target=worker.run, daemon=True).start()
        while not (finished["count"] == JOBS and worker.held_count == 0):
            time.sleep(0.01)
        seconds = time.monotonic() - started
        worker.request_stop("benchmark done")
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()}


def child(mode: str, queue_url: str, dlq_url: str) -> None:
    kind, _, concurrency = mode.partition("-")
    result = consume(queue_url, dlq_url, int(concurrency), guarded=kind == "jobfleet")
    print(json.dumps(result), flush=True)


def main() -> None:
    server, _ = start_moto()
    modes = [f"pool-{n}" for n in POOLS] + [f"jobfleet-{GUARDED_CONCURRENCY}"]
    results: dict[str, dict] = {}
    try:
        sqs = sqs_client()
        for _ in range(ROUNDS):
            for mode in modes:
                queue_url, dlq_url = make_queue(sqs)
                fill(sqs, queue_url, envelopes(JOBS, job_type, {}))
                run = run_contender(Path(__file__), mode, queue_url, dlq_url, CHILD_ENV)
                best = results.setdefault(mode, run)
                best["seconds"] = min(best["seconds"], run["seconds"])
                best["peak_rss_mib"] = max(best["peak_rss_mib"], run["peak_rss_mib"])
    finally:
        server.stop()
    heavy = JOBS // HEAVY_EVERY
    print(
        f"jobs: {JOBS} interleaved ({heavy} x ~{HEAVY_MIB} MiB over ~0.8 s, {JOBS - heavy} x 256 KiB + "
        f"{LIGHT_SECONDS * 1000:.0f} ms), limit: {LIMIT_MIB} MiB; best of {ROUNDS} rounds, highest peak"
    )
    print(f"{'contender':<44}{'peak RSS MiB':>14}{'limit crossed':>15}{'seconds':>9}{'jobs/s':>8}")
    labels = {f"pool-{n}": f"fixed pool, concurrency {n}, no guard" for n in POOLS}
    labels[f"jobfleet-{GUARDED_CONCURRENCY}"] = f"JobFleet, concurrency {GUARDED_CONCURRENCY} + memory guard"
    for mode in modes:
        r = results[mode]
        crossed = "YES" if r["peak_rss_mib"] > LIMIT_MIB else "no"
        print(
            f"{labels[mode]:<44}{r['peak_rss_mib']:>14.1f}{crossed:>15}{r['seconds']:>9.1f}"
            f"{JOBS / r['seconds']:>8.1f}"
        )
    fitting = [m for m in modes[:-1] if results[m]["peak_rss_mib"] <= LIMIT_MIB]
    guarded = results[modes[-1]]
    if not fitting:
        print("no fixed pool stayed under the limit in this run")
        return
    best = min(fitting, key=lambda m: results[m]["seconds"])
    print(f"best fixed pool under the limit: {labels[best]}")
    print(f"JobFleet under the limit: {'yes' if guarded['peak_rss_mib'] <= LIMIT_MIB else 'NO'}")
    print(f"ratio: {results[best]['seconds'] / guarded['seconds']:.2f}")


if __name__ == "__main__":
    child_or_main(child, main)
