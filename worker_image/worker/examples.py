"""Example handlers (the default WORKER_HANDLERS): one per tier's kind of work."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator

from worker import PermanentError, job


@job("onboarding")
def onboard_customer(payload, ctx):
    """Fast and time-sensitive: validate, then one (simulated) external API call."""
    user_id = payload.get("userId")
    if not isinstance(user_id, str) or not user_id:
        raise PermanentError(f"onboarding needs a userId, got {user_id!r}")  # retrying cannot fix this
    email = payload.get("email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        raise PermanentError(f"onboarding got an invalid email {email!r}")
    time.sleep(float(payload.get("apiLatencySeconds", 0.05)))
    ctx.logger.info("customer onboarded", extra={"jobId": ctx.job_id, "userId": user_id})


def _report_rows(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"{i},customer-{i},{(i * 7919) % 10007},{'x' * 64}\n"


@job("report")
def build_report(payload, ctx):
    """Memory-heavy if done naively (a big document held in memory); here rows stream to the output in
    fixed-size chunks, so memory stays flat however many rows the report has."""
    rows = int(payload.get("rows", 100_000))
    chunk_rows = 5_000
    digest = hashlib.sha256()
    output = payload.get("output") or os.path.join(tempfile.gettempdir(), f"report-{ctx.job_id}.csv")
    with open(output, "w", encoding="utf-8") as out:
        chunk: list[str] = []
        for line in _report_rows(rows):
            chunk.append(line)
            if len(chunk) == chunk_rows:
                text = "".join(chunk)
                out.write(text)
                digest.update(text.encode())
                chunk.clear()
        text = "".join(chunk)
        out.write(text)
        digest.update(text.encode())
    ctx.logger.info(
        "report written",
        extra={"jobId": ctx.job_id, "rows": rows, "output": output, "sha256": digest.hexdigest()},
    )


@job("analysis")
def run_analysis(payload, ctx):
    """Long-running: works in steps and stops cleanly before its deadline instead of being cut off."""
    steps = int(payload.get("steps", 60))
    step_seconds = float(payload.get("stepSeconds", 1.0))
    for step in range(steps):
        if ctx.remaining_seconds() < step_seconds:
            # The tier's maximum duration is too short for this input; a retry would hit the same wall.
            raise PermanentError(f"analysis stopped at step {step}/{steps}: deadline reached")
        time.sleep(step_seconds)
    ctx.logger.info("analysis finished", extra={"jobId": ctx.job_id, "steps": steps})
