"""Wake from zero: time from `POST /jobs` to the scale call, the API running as a real process.

    .venv/bin/python bench/wake_from_zero.py [--rounds N]

One moto server (SQS + ECS over HTTP) started here; `python -m worker api` as a subprocess with the
environment the compute stack gives it (TIER_QUEUES, JOB_TYPES, WAKE_SERVICES, WAKE_INTERVAL_SECONDS);
a worker service `standard-workers` at desiredCount 0 in moto's ECS. Each round sets the count back
to 0, waits out the rate limit, POSTs a `report` job over HTTP and polls moto until desiredCount is 1.

Baseline: the wake-up alarm, which cannot run here (moto evaluates no alarm). Its floor is computed
from the synthesized alarm instead: the message's one-minute data point closes at the end of its
minute (30 s later on average) and reaches the alarm `capacity.metric_lag_seconds` (60 s) after that.
The last line is `ratio: X` (that floor over the measured p50; the floor is not measured).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REGION, REPO, start_moto

ALARM_FLOOR_SECONDS = 30 + 60  # mean time to the minute's end + metric lag (see docstring)
INTERVAL_SECONDS = 1


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    server, endpoint = start_moto()
    api = None
    try:
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
        queues = {t: sqs.create_queue(QueueName=f"bench-wake-{t}")["QueueUrl"]
                  for t in ("critical", "standard", "batch")}
        ecs.create_cluster(clusterName="bench")
        ecs.register_task_definition(
            family="workers", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
            memory="512", containerDefinitions=[{"name": "w", "image": "worker", "essential": True}])
        # moto reports this many running tasks for the service: the waker's guard (re-checks
        # until a task runs) then ends after its first call, as it would once a task is up.
        os.environ["MOTO_ECS_SERVICE_RUNNING"] = "1"
        ecs.create_service(cluster="bench", serviceName="standard-workers", taskDefinition="workers",
                           desiredCount=0, launchType="FARGATE")
        port = free_port()
        env = {**os.environ, "PORT": str(port),
               "PYTHONPATH": os.pathsep.join([str(REPO / "worker_image"), str(REPO)]),
               "API_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
               "TIER_QUEUES": json.dumps(queues),
               "JOB_TYPES": json.dumps({"onboarding": "critical", "report": "standard",
                                        "analysis": "batch"}),
               "WAKE_SERVICES": json.dumps({"standard": {"cluster": "bench",
                                                        "service": "standard-workers"}}),
               "WAKE_INTERVAL_SECONDS": str(INTERVAL_SECONDS)}
        api = subprocess.Popen([sys.executable, "-m", "worker", "api"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or api.poll() is not None:
                    raise SystemExit("the API did not start") from None
                time.sleep(0.2)

        def desired() -> int:
            return ecs.describe_services(cluster="bench", services=["standard-workers"])[
                "services"][0]["desiredCount"]

        latencies = []
        for _ in range(args.rounds):
            ecs.update_service(cluster="bench", service="standard-workers", desiredCount=0)
            time.sleep(INTERVAL_SECONDS + 0.1)
            request = urllib.request.Request(
                f"{base}/jobs", data=json.dumps({"type": "report", "payload": {}}).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            started = time.monotonic()
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202
            while desired() != 1:
                if time.monotonic() - started > 30:
                    raise SystemExit("no scale call within 30 s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - started)
        p50 = statistics.median(latencies)
        print(f"rounds: {len(latencies)}")
        print(f"POST -> desiredCount 1: p50 {p50:.3f} s, max {max(latencies):.3f} s (target <= 5 s)")
        print(f"wake-up alarm floor (computed, not measured): {ALARM_FLOOR_SECONDS} s")
        print(f"ratio: {ALARM_FLOOR_SECONDS / p50:.0f}")
        return 0
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
