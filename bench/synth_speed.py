"""Synth time of JobFleet (all environments, cdk-nag on) vs a bare aws-ecs-patterns app.

    .venv/bin/python bench/synth_speed.py [rounds]

Both are run as fresh processes (jsii starts Node each time, as `cdk synth` does), alternating,
in the same run; the medians are compared. The target: JobFleet within 1.5x of the baseline.
Prints one line per run, the medians, and last `ratio: <JobFleet / baseline>`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def _context() -> str:
    return json.dumps(json.loads((ROOT / "cdk.json").read_text())["context"])


def _time(command: list[str], outdir: str) -> float:
    env = {
        **os.environ,
        "CDK_OUTDIR": outdir,
        "CDK_CONTEXT_JSON": _context(),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main(rounds: int) -> None:
    runs: dict[str, list[float]] = {"baseline": [], "jobfleet": []}
    commands = {
        "baseline": [PYTHON, str(ROOT / "bench" / "ecs_patterns_baseline_app.py")],
        "jobfleet": [PYTHON, "-m", "cdk_app.app"],
    }
    for round_number in range(rounds):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as outdir:
                if name == "baseline":
                    command = [*command, outdir]
                seconds = _time(command, outdir)
            runs[name].append(seconds)
            print(f"round {round_number + 1} {name:9s} {seconds:6.2f} s")
    baseline, jobfleet = (statistics.median(runs[k]) for k in ("baseline", "jobfleet"))
    print(f"median baseline (aws-ecs-patterns, 3 envs): {baseline:.2f} s")
    print(f"median JobFleet (3 envs, config + cdk-nag): {jobfleet:.2f} s")
    print(f"ratio: {jobfleet / baseline:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
