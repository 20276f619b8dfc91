"""Logs and metrics. stdout carries one JSON line per job outcome, each also a CloudWatch Embedded Metric
Format record (the awslogs driver ships it; CloudWatch extracts the metrics, no PutMetricData calls).
Diagnostics go to stderr as JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

NAMESPACE = "JobFleet"
UNKNOWN_TYPE = "unknown"  # dimension value for invalid/unregistered types: garbage must not create metrics

_UNITS = {
    "JobsSucceeded": "Count",
    "JobsFailed": "Count",
    "JobsDeadLettered": "Count",
    "JobsDeferred": "Count",
    "JobsReleased": "Count",
    "JobsSkipped": "Count",
    "JobDuration": "Milliseconds",
    "JobMemoryPeak": "Bytes",
    "QueueWait": "Milliseconds",
    "MemoryPauses": "Count",
    "BreakerOpens": "Count",
}
_OUTCOME_METRIC = {
    "succeeded": "JobsSucceeded",
    "failed": "JobsFailed",
    "dead-lettered": "JobsDeadLettered",
    "deferred": "JobsDeferred",
    "released": "JobsReleased",
    "skipped": "JobsSkipped",
}

_stdout_lock = threading.Lock()
_RESERVED_LOG_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Metrics:
    """Writes EMF records to a stream (stdout in production, a buffer in tests)."""

    def __init__(self, tier: str, stream: TextIO | None = None) -> None:
        self.tier = tier
        self._stream = stream

    def emit(self, metrics: dict[str, float], dimensions: dict[str, str], properties: dict[str, Any]) -> None:
        record = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name, "Unit": _UNITS[name]} for name in metrics],
                    }
                ],
            },
            **properties,
            **dimensions,
            **metrics,
        }
        line = json.dumps(record, default=str)
        with _stdout_lock:
            stream = self._stream or sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def job_outcome(
        self,
        *,
        job_id: str | None,
        job_type: str,
        attempt: int,
        outcome: str,
        duration_ms: float | None,
        queue_wait_ms: float | None,
        worker_id: str,
        error_type: str | None = None,
        error_message: str | None = None,
        memory_bytes: float | None = None,
        worker_memory_bytes: int | None = None,
    ) -> None:
        """The one line per job outcome: a structured log and, through EMF, the per-type metrics.

        ``memory_bytes`` is the job's own peak share of the worker's memory (``JobMemoryPeak``), so a
        memory spike can be tied to a job type; ``worker_memory_bytes`` the worker's peak while it ran."""
        metrics: dict[str, float] = {_OUTCOME_METRIC[outcome]: 1}
        if duration_ms is not None:
            metrics["JobDuration"] = round(duration_ms, 3)
        if memory_bytes is not None:
            metrics["JobMemoryPeak"] = int(memory_bytes)
        if queue_wait_ms is not None:
            metrics["QueueWait"] = max(0.0, round(queue_wait_ms, 3))
        properties = {
            "level": "INFO" if outcome == "succeeded" else "WARNING",
            "event": "job",
            "jobId": job_id,
            "attempt": attempt,
            "outcome": outcome,
            "durationMs": metrics.get("JobDuration"),
            "workerId": worker_id,
        }
        if worker_memory_bytes is not None:
            properties["workerMemoryPeakBytes"] = worker_memory_bytes
        if error_type:
            properties.update(errorType=error_type, errorMessage=(error_message or "")[:1000])
        self.emit(metrics, {"Tier": self.tier, "JobType": job_type}, properties)

    def memory_pause(self, used_fraction: float) -> None:
        self.emit(
            {"MemoryPauses": 1},
            {"Tier": self.tier},
            {"level": "WARNING", "event": "memory-pause", "usedFraction": round(used_fraction, 4)},
        )

    def breaker_open(self, job_type: str) -> None:
        self.emit(
            {"BreakerOpens": 1},
            {"Tier": self.tier, "JobType": job_type},
            {"level": "WARNING", "event": "breaker-open"},
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED_LOG_KEYS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("botocore").setLevel(logging.WARNING)
