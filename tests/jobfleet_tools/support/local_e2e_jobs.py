"""Handlers for the local-mode end-to-end test; local mode loads them with `--handlers local_e2e_jobs`."""

from __future__ import annotations

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
