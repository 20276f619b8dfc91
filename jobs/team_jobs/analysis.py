"""usage.analyse: a long analysis in steps. It checks its deadline before every step and hands its
partial figures to ctx.set_result as it goes, so the stored result is the last complete step's."""

from __future__ import annotations

import math
import time

from worker import PermanentError, job


@job("usage.analyse")
def analyse_usage(payload, ctx):
    samples = payload.get("samples")
    if not isinstance(samples, list) or not samples or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in samples):
        raise PermanentError("usage.analyse needs a non-empty list of numbers in samples")
    chunk = int(payload.get("chunk", 1000))
    step_seconds = float(payload.get("stepSeconds", 0))
    count, total, squares, peak = 0, 0.0, 0.0, -math.inf
    for start in range(0, len(samples), chunk):
        if ctx.remaining_seconds() < step_seconds + 1:
            # Retrying would hit the same wall: the tier's max_job_seconds is too short for this input.
            raise PermanentError(f"deadline reached after {count} of {len(samples)} samples")
        for value in samples[start:start + chunk]:
            count += 1
            total += value
            squares += value * value
            peak = max(peak, value)
        time.sleep(step_seconds)
        mean = total / count
        ctx.set_result({"samples": count, "mean": round(mean, 6), "peak": peak,
                        "stddev": round(math.sqrt(max(0.0, squares / count - mean * mean)), 6)})
    ctx.logger.info("analysis finished", extra={"jobId": ctx.job_id, "samples": count})
