"""Handlers for the local-mode end-to-end test; local mode loads them with `--handlers local_e2e_jobs`."""

from __future__ import annotations

import time

from worker import PermanentError, job


@job("e2e.flaky")
def flaky(payload, ctx):
    """Fails transiently (a retryable exception) until attempt payload["succeedOn"]."""
    if ctx.attempt < int(payload["succeedOn"]):
        raise ConnectionError(f"upstream unavailable (attempt {ctx.attempt})")


@job("e2e.poison")
def poison(payload, ctx):
    """Can never succeed: dead-lettered at once with its reason."""
    raise PermanentError(f"customer record {payload.get('customer')!r} is malformed")


@job("e2e.batch-reclaimed")
def batch_reclaimed(payload, ctx):
    """Runs on its first attempt until its process is killed (a reclaimed Spot host); then succeeds."""
    if ctx.attempt == 1:
        time.sleep(float(payload.get("holdSeconds", 60)))
    return {"attempt": ctx.attempt}


@job("e2e.batch-poison")
def batch_poison(payload, ctx):
    """e2e.poison on the batch tier."""
    return poison(payload, ctx)


@job("e2e.batch-flaky")
def batch_flaky(payload, ctx):
    """e2e.flaky on the batch tier."""
    return flaky(payload, ctx)
