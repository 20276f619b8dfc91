"""One PNG per simulation: per tier, queue depth, tasks and wait over time (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt

from .simulate import TierResult


def _hours(n: int) -> list[float]:
    return [(m + 1) / 60 for m in range(n)]


def write_chart(results: list[TierResult], title: str, path: Path) -> Path:
    """Rows = tiers; columns = waiting messages, tasks (desired / running), longest wait."""
    fig, axes = plt.subplots(len(results), 3, figsize=(15, 3.2 * len(results)), squeeze=False)
    # Metadata without a date or version: the same simulation writes the same bytes.
    for row, result in zip(axes, results, strict=True):
        s = result.series
        x = _hours(len(s.visible))
        unit = "jobs (Batch)" if result.runtime == "batch" else "tasks"
        depth, tasks, wait = row
        depth.plot(x, s.visible, color="tab:blue", linewidth=0.9)
        depth.set_title(f"{result.name}: messages waiting (1-min average)", fontsize=10)
        depth.set_ylabel("messages")
        tasks.step(x, s.desired, where="post", color="tab:orange", linewidth=0.9,
                   label="desired" if result.runtime == "service" else "placed")
        tasks.plot(x, s.running, color="tab:green", linewidth=0.9, label="running (1-min avg)")
        tasks.set_title(f"{result.name}: {unit} (peak {result.peak_tasks})", fontsize=10)
        tasks.set_ylabel(unit)
        tasks.legend(loc="upper right", fontsize=8)
        wait.plot(x, s.max_wait, color="tab:red", linewidth=0.9, label="longest wait started")
        wait.axhline(result.objective_seconds, color="black", linestyle="--", linewidth=0.8,
                     label=f"objective {result.objective_seconds:g} s")
        verdict = "meets" if result.meets_objective else "MISSES"
        wait.set_title(f"{result.name}: wait p99 {result.percentile(99):.0f} s ({verdict})",
                       fontsize=10)
        wait.set_ylabel("seconds")
        wait.legend(loc="upper right", fontsize=8)
        for axis in row:
            axis.set_xlabel("hours from trace start")
            axis.grid(alpha=0.3)
            axis.set_xlim(0, max(x[-1] if x else 1, 1))
            axis.set_ylim(bottom=0, top=max(axis.get_ylim()[1], 1))
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return path
