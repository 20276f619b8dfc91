"""Waiting in tests for what real processes and servers do in their own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "",
             interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy and return its value; the timeout only stops a broken test from
    hanging (no timed assertions: it is never what a test checks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f}s: {what or predicate}")
