"""`python -m jobfleet_tools simulate --env NAME --trace FILE`: replay a trace, per-tier waits, a PNG.

`--check` exits 1 when a tier misses its latency objective (p99 wait above it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import EXIT_MISSED, Parser, add_common, command, format_results, load_inputs, run, run_title


@command
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m jobfleet_tools simulate",
                    description="Replay a load trace against an environment's scaling policies.")
    add_common(parser)
    parser.add_argument("--trace", required=True,
                        help="CSV file (minute,job_type,count[,mean_seconds]) or a committed trace "
                             "name: weekday, nightly, week")
    parser.add_argument("--chart", type=Path, help="PNG to write (default capacity-ENV-TRACE.png)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a tier's p99 wait is above its latency objective")
    parser.add_argument("--no-api-wake", action="store_true",
                        help="jobs sent straight to the queues: only the wake-up alarm starts a tier")
    args = parser.parse_args(argv)
    config, trace = load_inputs(args, args.trace)
    assert trace is not None  # --trace is required
    started = time.perf_counter()
    results = run(config, trace, args.seed, api_wake=not args.no_api_wake)
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
