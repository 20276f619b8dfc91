"""`simulate` and `cost`: the capacity commands of `python -m jobfleet_tools`.

Bad input (unknown environment, invalid config, unreadable trace) prints one line and exits 2.
`simulate --check` exits 1 when a tier misses its latency objective (p99 wait above it).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cdk_app.config import ENVIRONMENTS_DIR, ConfigError, EnvironmentConfig, load_environment

from . import cost as costs
from .simulate import TierResult, simulate
from .trace import Trace, TraceError, load

EXIT_MISSED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="environment name (cdk_app/environments/NAME.toml)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--config-dir", type=Path, default=ENVIRONMENTS_DIR,
                        help="directory of the environment files")


class _Exit(Exception):
    """Ends a command with one line on stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _command(body: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    @functools.wraps(body)
    def run(argv: list[str] | None = None) -> int:
        try:
            return body(argv)
        except _Exit as failure:
            print(f"error: {failure}", file=sys.stderr)
            return failure.code
    return run


def _load(args: argparse.Namespace, trace_name: str | None) -> tuple[EnvironmentConfig, Trace | None]:
    try:
        config = load_environment(args.env, args.config_dir)
        trace = load(trace_name, set(config.job_types)) if trace_name else None
    except (ConfigError, TraceError) as exc:
        raise _Exit(EXIT_USAGE, str(exc)) from None
    return config, trace


def _simulate(config: EnvironmentConfig, trace: Trace, seed: int, *, api_wake: bool = True
              ) -> list[TierResult]:
    try:
        return simulate(config, trace, seed=seed, api_wake=api_wake)
    except RuntimeError as exc:  # the queue never drained: the load exceeds max_tasks
        raise _Exit(EXIT_MISSED, str(exc)) from None


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


@_command
def simulate_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m jobfleet_tools simulate",
                     description="Replay a load trace against an environment's scaling policies.")
    _common(parser)
    parser.add_argument("--trace", required=True,
                        help="CSV file (minute,job_type,count[,mean_seconds]) or a committed trace "
                             "name: weekday, nightly, week")
    parser.add_argument("--chart", type=Path, help="PNG to write (default capacity-ENV-TRACE.png)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a tier's p99 wait is above its latency objective")
    parser.add_argument("--no-api-wake", action="store_true",
                        help="jobs sent straight to the queues: only the wake-up alarm starts a tier")
    args = parser.parse_args(argv)
    config, trace = _load(args, args.trace)
    started = time.perf_counter()
    results = _simulate(config, trace, args.seed, api_wake=not args.no_api_wake)
    elapsed = time.perf_counter() - started
    from .chart import write_chart  # matplotlib import costs ~0.5 s; only here

    chart = args.chart or Path(f"capacity-{config.name}-{trace.name}.png")
    title = run_title(config, trace, args.seed, api_wake=not args.no_api_wake)
    write_chart(results, title, chart)
    print(f"{title} ({trace.minutes} min, {trace.jobs()} jobs): simulated in {elapsed:.2f} s")
    print(format_results(results))
    print(f"chart: {chart}")
    missed = [r.name for r in results if not r.meets_objective]
    if args.check and missed:
        print(f"check failed: {', '.join(missed)} miss their latency objective", file=sys.stderr)
        return EXIT_MISSED
    return 0


@_command
def cost_main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m jobfleet_tools cost",
                     description="Monthly cost of an environment next to the seeds' single box.")
    _common(parser)
    parser.add_argument("--trace", help="trace for the variable part (see simulate --trace)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"),
                        help="cloud assembly to count resources in (default cdk.out; the "
                             "environment is synthesized when it is not there)")
    args = parser.parse_args(argv)
    config, trace = _load(args, args.trace)
    templates = costs.stage_templates(args.cdk_out, config.name)
    if templates is None:
        print(f"({args.cdk_out} has no {config.name} stage: synthesizing it)", file=sys.stderr)
        with tempfile.TemporaryDirectory() as outdir:
            templates = costs.synthesize_templates(config, Path(outdir))
    results, hours = None, 0.0
    if trace is not None:
        results = _simulate(config, trace, args.seed)
        hours = trace.minutes / 60
    est = costs.estimate(config, costs.inventory_from_templates(templates), costs.load_prices(),
                         results, hours, trace.name if trace else None)
    print(costs.format_estimate(est))
    return 0


COMMANDS = {"simulate": simulate_main, "cost": cost_main}
