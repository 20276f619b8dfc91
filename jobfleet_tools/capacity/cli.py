"""What `python -m jobfleet_tools simulate` and `cost` share: argument parsing, loading, errors.

Bad input (unknown environment, invalid config, unreadable trace) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from jobfleet_config.config import ENVIRONMENTS_DIR, ConfigError, EnvironmentConfig, load_environment

from .simulate import TierResult, simulate
from .trace import Trace, TraceError, load

EXIT_MISSED = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment name (cdk_app/environments/NAME.toml)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--config-dir", type=Path, default=ENVIRONMENTS_DIR,
                        help="directory of the environment files")


class Exit(Exception):
    """Ends a command with one line on stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def command(body: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    @functools.wraps(body)
    def run(argv: list[str] | None = None) -> int:
        try:
            return body(argv)
        except Exit as failure:
            print(f"error: {failure}", file=sys.stderr)
            return failure.code
    return run


def load_inputs(args: argparse.Namespace, trace_name: str | None) -> tuple[EnvironmentConfig, Trace | None]:
    try:
        config = load_environment(args.env, args.config_dir)
        trace = load(trace_name, set(config.job_types)) if trace_name else None
    except (ConfigError, TraceError) as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    return config, trace


def run(config: EnvironmentConfig, trace: Trace, seed: int, *, api_wake: bool = True
              ) -> list[TierResult]:
    try:
        return simulate(config, trace, seed=seed, api_wake=api_wake)
    except RuntimeError as exc:  # the queue never drained: the load exceeds max_tasks
        raise Exit(EXIT_MISSED, str(exc)) from None


def format_results(results: list[TierResult]) -> str:
    head = (f"{'tier':<10} {'runtime':<8} {'jobs':>7} {'p50 s':>8} {'p95 s':>8} {'p99 s':>8} "
            f"{'objective':>9} {'above obj.':>10} {'peak':>5} {'task-h':>8}  verdict")
    lines = [head]
    for r in results:
        extra = f" ({r.interruptions} Spot reclaims, {r.failed} failed)" if r.runtime == "batch" else ""
        verdict = "meets" if r.meets_objective else "MISSES"
        lines.append(
            f"{r.name:<10} {r.runtime:<8} {r.jobs:>7} {r.percentile(50):>8.1f} {r.percentile(95):>8.1f} "
            f"{r.percentile(99):>8.1f} {r.objective_seconds:>8.0f}s "
            f"{r.seconds_above_objective / 60:>7.1f} min {r.peak_tasks:>5} {r.task_hours:>8.1f}  "
            f"{verdict}{extra}")
    return "\n".join(lines)


def run_title(config: EnvironmentConfig, trace: Trace, seed: int, *, api_wake: bool) -> str:
    wake = "API wake-up" if api_wake else "wake-up alarm only"
    return f"{config.name}: trace {trace.name}, seed {seed}, {wake}"
