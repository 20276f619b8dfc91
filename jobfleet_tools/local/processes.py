"""Local mode's processes: spawning `python -m worker ...` in its own process group with its output
in a log file, one console line per job outcome, and stopping (SIGTERM, the budget, then SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether nothing listens on HOST:port (SO_REUSEADDR, as uvicorn: a closed port in TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved here: nothing may be imported between fork and exec
_PR_SET_PDEATHSIG = 1


def new_session_with_parent_death_signal() -> None:
    """Run in the child before exec: own process group (no terminal Ctrl-C; we decide how it stops),
    and on Linux SIGTERM when local mode dies without cleaning up, so nothing is orphaned."""
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_seconds: float
    readers: list[threading.Thread] = field(default_factory=list)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Output:
    """Console lines from many threads, never interleaved mid-line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


def job_summary(source: str, line: str) -> str | None:
    """One console line for a job-outcome record (the worker's EMF line on stdout), else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("event") != "job":
        return None
    text = (f"[{source}] {record.get('outcome', '?'):<13} {record.get('JobType', '?'):<12} "
            f"{record.get('jobId')} attempt {record.get('attempt')}")
    if record.get("errorType"):
        text += f": {record['errorType']}: {record.get('errorMessage', '')}"
    return text


def spawn(name: str, args: list[str], env: dict[str, str], stop_seconds: float, *, run_dir: Path,
          out: Output) -> Child:
    """`python -m worker <args>`; stdout/stderr to <run_dir>/<name>.log, job outcomes to the console."""
    log_path = run_dir / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", *args], env=env, cwd=REPO,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        bufsize=1, preexec_fn=new_session_with_parent_death_signal,
    )
    child = Child(name, proc, log_path, stop_seconds)
    log_file = log_path.open("a", encoding="utf-8")
    lock = threading.Lock()

    def pump(stream: IO[str], summarize: bool) -> None:
        for line in stream:
            with lock:
                log_file.write(line)
                log_file.flush()
            if summarize and (summary := job_summary(name, line)):
                out.line(summary)
        stream.close()

    child.readers = [
        threading.Thread(target=pump, args=(proc.stdout, True), daemon=True, name=f"{name}-out"),
        threading.Thread(target=pump, args=(proc.stderr, False), daemon=True, name=f"{name}-err"),
    ]
    for reader in child.readers:
        reader.start()
    return child


def stop(children: list[Child], out: Output, hard: threading.Event) -> None:
    """SIGTERM every group, wait each one's budget (unless ``hard``), then SIGKILL what is left."""
    for child in children:
        if child.proc.poll() is None:
            signal_group(child.proc, signal.SIGTERM)
    for child in children:
        deadline = time.monotonic() + child.stop_seconds
        while child.proc.poll() is None and time.monotonic() < deadline and not hard.is_set():
            time.sleep(0.1)
        if child.proc.poll() is None:
            out.line(f"{child.name} did not stop in time; killing it")
        # The group, not just the leader: a handler's own subprocesses must not outlive it.
        signal_group(child.proc, signal.SIGKILL)
        child.proc.wait()
        for reader in child.readers:
            reader.join(timeout=5)
        code = child.proc.returncode
        how = "ended by SIGTERM" if code == -signal.SIGTERM else f"exit code {code}"
        out.line(f"stopped {child.name} ({how})")
