"""Process lifecycle: stop signals, ECS task scale-in protection, and the health-check heartbeat file."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("worker.lifecycle")


def install_stop_signals(on_stop: Callable[[str], None]) -> None:
    """SIGTERM (ECS stop, scale-in) and SIGINT (Ctrl-C) both start a drain."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: on_stop(signal.Signals(signum).name))


class TaskProtection:
    """ECS task scale-in protection, held while the worker holds any message.

    Without it, a scale-in picks tasks at random and SIGTERMs busy ones; long jobs would be cut off.
    Protection expires on its own (so a wedged worker cannot pin capacity forever); while busy it is
    refreshed before expiry. A no-op outside ECS (no ``ECS_AGENT_URI``).
    """

    def __init__(self, agent_uri: str | None, expires_in_minutes: int, timeout: float = 2.0) -> None:
        self._url = f"{agent_uri.rstrip('/')}/task-protection/v1/state" if agent_uri else None
        self.expires_in_minutes = max(1, min(2880, expires_in_minutes))
        self._timeout = timeout
        self._enabled = False
        self._renew_at = 0.0

    @classmethod
    def from_env(cls, max_job_seconds: float) -> TaskProtection:
        return cls(os.environ.get("ECS_AGENT_URI"), math.ceil(max_job_seconds / 60) + 5)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def update(self, busy: bool, now: float) -> None:
        if self._url is None:
            return
        if busy == self._enabled and not (busy and now >= self._renew_at):
            return
        body: dict[str, bool | int] = {"ProtectionEnabled": busy}
        if busy:
            body["ExpiresInMinutes"] = self.expires_in_minutes
        request = urllib.request.Request(
            self._url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            log.warning("task protection update failed; retrying next tick", extra={"error": str(exc)})
            return
        self._enabled = busy
        self._renew_at = now + self.expires_in_minutes * 60 / 2


def touch_health_file(path: str) -> None:
    try:
        Path(path).touch()
    except OSError as exc:
        log.warning("cannot touch health file", extra={"path": path, "error": str(exc)})


def health_file_fresh(path: str, max_age_seconds: float, now: float | None = None) -> bool:
    """The container health check: the poll loop touches the file every iteration, so an old file
    means the loop is stalled (deadlock, wedged network call) and the task should be replaced."""
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except OSError:
        return False
    return age <= max_age_seconds
