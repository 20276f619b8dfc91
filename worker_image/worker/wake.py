"""Wake a tier's worker service from zero tasks the moment a job is submitted to it.

A tier with `min_tasks = 0` otherwise wakes through a CloudWatch alarm on one-minute SQS metrics:
minutes after the first message (more after a long idle spell). The API knows at once: after a
job is queued it asks, in the background, whether the tier's service wants zero tasks and if so
sets its desired count to 1 (`ecs:DescribeServices` + `ecs:UpdateService`, allowed on that one
service only). Target tracking takes over from 1; the alarm stays as the fallback for messages
sent straight to the queue.

- Never blocks or fails a submission: the calls run on a background thread, errors are logged.
- Rate-limited: at most one check per tier every `WAKE_INTERVAL_SECONDS` per API task.
- Idempotent: the count is raised only from 0 to 1, never lowered or overwritten.
- Guarded: after raising it, the waker re-checks every interval until a task runs (at most
  `GUARD_SECONDS`) and raises it again if it fell back to 0. Target tracking's scale-in used to
  do that, acting on data points from before the job; scaling in is now step policies whose
  alarms count no minute from before a wake-up (docs/scaling.md), so the guard is a safety net
  for anything else that lowers the count (an operator's UpdateService).

Configuration (set by the CDK compute stack): `WAKE_SERVICES` = JSON
`{tier: {"cluster": name, "service": name}}` (only tiers that can scale to zero),
`WAKE_INTERVAL_SECONDS` (default 10).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobfleet_contract import environment as names
from jobfleet_contract.environment import env_number, parse_wake_services

log = logging.getLogger("worker.wake")

DEFAULT_INTERVAL_SECONDS = 10.0
# Longest a wake keeps re-checking: a Fargate task normally runs within one or two minutes.
GUARD_SECONDS = 300.0


class ServiceWaker:
    def __init__(self, services: Mapping[str, tuple[str, str]], ecs_client, *,
                 interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
                 guard_seconds: float = GUARD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._services = dict(services)
        self._ecs = ecs_client
        self._interval = interval_seconds
        self._guard_seconds = guard_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._busy: set[str] = set()  # tiers with a check or guard in progress
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        # One thread per tier at most: a guard of one tier never delays another tier's wake.
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(self._services)),
                                            thread_name_prefix="wake")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, ecs_client=None) -> ServiceWaker | None:
        services = parse_wake_services(env)
        if not services:
            return None
        interval = env_number(env, names.WAKE_INTERVAL_SECONDS, DEFAULT_INTERVAL_SECONDS,
                              minimum=1, maximum=300)
        client = ecs_client or boto3.client("ecs", config=Config(
            connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}))
        return cls(services, client, interval_seconds=interval)

    def poke(self, tier: str) -> bool:
        """A job was queued for `tier`: schedule a wake-up check unless one ran recently."""
        target = self._services.get(tier)
        if target is None:
            return False
        now = self._clock()
        with self._lock:
            last = self._last.get(tier)
            if tier in self._busy or (last is not None and now - last < self._interval):
                return False
            self._last[tier] = now
            self._busy.add(tier)
        self._executor.submit(self._wake, tier, *target)
        return True

    def _wake(self, tier: str, cluster: str, service: str) -> None:
        try:
            self._raise_and_guard(tier, cluster, service)
        except (BotoCoreError, ClientError) as exc:
            # The wake-up alarm is the fallback; a failed shortcut costs minutes, not the job.
            log.warning("wake-up call failed", extra={"tier": tier, "error": str(exc)})
        finally:
            with self._lock:
                self._busy.discard(tier)

    def _raise_and_guard(self, tier: str, cluster: str, service: str) -> None:
        deadline = self._clock() + self._guard_seconds
        woken = False
        while not self._stopped.is_set():
            found = self._ecs.describe_services(cluster=cluster, services=[service])["services"]
            if not found:
                return
            desired, running = found[0].get("desiredCount", 0), found[0].get("runningCount", 0)
            if desired == 0:
                self._ecs.update_service(cluster=cluster, service=service, desiredCount=1)
                log.info("tier woken from zero tasks",
                         extra={"tier": tier, "service": service, "again": woken})
                woken = True
            if not woken or running >= 1 or self._clock() + self._interval > deadline:
                return  # running (target tracking has it), or never ours to guard
            self._stopped.wait(self._interval)

    def close(self) -> None:
        """Stop guards and wait for calls in flight (tests, API shutdown)."""
        self._stopped.set()
        self._executor.shutdown(wait=True)
