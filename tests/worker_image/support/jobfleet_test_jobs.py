"""Handlers used by the worker tests, in-process and in real `python -m worker run` subprocesses.

Each handler writes one marker file per event into payload["recordDir"], so tests (and other processes)
can see what ran, how often and at which attempt, without sharing memory.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from worker import PermanentError, job

_lock = threading.Lock()
active = 0
max_active = 0


def _mark(payload, ctx, event: str) -> None:
    record_dir = Path(payload["recordDir"])
    record_dir.mkdir(parents=True, exist_ok=True)
    name = f"{event}--{ctx.job_id}--{ctx.attempt}--{os.getpid()}--{uuid.uuid4().hex[:8]}"
    (record_dir / name).write_text(f"{time.time()}")


@job("test.sleep")
def sleep_job(payload, ctx):
    """Sleeps payload["seconds"]; tracks how many run at once (in-process tests read max_active)."""
    global active, max_active
    _mark(payload, ctx, "start")
    with _lock:
        active += 1
        max_active = max(max_active, active)
    try:
        time.sleep(float(payload.get("seconds", 0)))
    finally:
        with _lock:
            active -= 1
    _mark(payload, ctx, "done")


@job("test.fail-until")
def fail_until(payload, ctx):
    """Fails with a transient error until attempt payload["succeedOn"]."""
    _mark(payload, ctx, "start")
    if ctx.attempt < int(payload["succeedOn"]):
        raise ConnectionError(f"downstream unavailable (attempt {ctx.attempt})")
    _mark(payload, ctx, "done")


@job("test.permanent")
def permanent(payload, ctx):
    _mark(payload, ctx, "start")
    raise PermanentError("customer record is malformed")


@job("test.flaky")
def flaky(payload, ctx):
    _mark(payload, ctx, "start")
    raise TimeoutError("payment provider timed out")


@job("test.hang")
def hang(payload, ctx):
    _mark(payload, ctx, "start")
    time.sleep(float(payload.get("seconds", 3600)))
    _mark(payload, ctx, "done")


@job("test.pid")
def report_pid(payload, ctx):
    _mark(payload, ctx, "start")


@job("test.behave")
def behave(payload, ctx):
    """Does what payload["raise"] says: "transient", "permanent", or nothing (succeeds)."""
    _mark(payload, ctx, "start")
    if payload.get("raise") == "transient":
        raise ConnectionError("downstream unavailable")
    if payload.get("raise") == "permanent":
        raise PermanentError("input can never succeed")
    _mark(payload, ctx, "done")


# job id -> the share of the memory limit the job declares it holds while it runs (test.memory); a test's
# memory reader sums these, so admission is exercised against memory that follows the running jobs.
memory_held: dict[str, float] = {}


@job("test.memory")
def hold_memory(payload, ctx):
    _mark(payload, ctx, "start")
    with _lock:
        memory_held[ctx.job_id] = float(payload["fraction"])
    try:
        time.sleep(float(payload.get("seconds", 0.3)))
    finally:
        with _lock:
            memory_held.pop(ctx.job_id, None)
    _mark(payload, ctx, "done")


@job("test.memory-light")
def hold_little_memory(payload, ctx):
    hold_memory(payload, ctx)


@job("test.async")
async def async_job(payload, ctx):
    import asyncio

    _mark(payload, ctx, "start")
    await asyncio.sleep(0.01)
    _mark(payload, ctx, "done")


@job("test.result")
def with_result(payload, ctx):
    """Returns payload["result"], or hands it to ctx.set_result when payload["viaContext"]."""
    if payload.get("viaContext"):
        ctx.set_result(payload["result"])
        return None
    return payload["result"]


@job("test.unserializable-result")
def unserializable_result(payload, ctx):
    return {"when": object()}
