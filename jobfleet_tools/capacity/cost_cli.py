"""`python -m jobfleet_tools cost --env NAME [--trace FILE]`: monthly cost next to the single box."""

from __future__ import annotations

from pathlib import Path

from . import cost as costs
from .cli import EXIT_USAGE, Exit, Parser, add_common, command, load_inputs, run


@command
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m jobfleet_tools cost",
                    description="Monthly cost of an environment next to the seeds' single box.")
    add_common(parser)
    parser.add_argument("--trace", help="trace for the variable part (see simulate --trace)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"),
                        help="cloud assembly to count resources in (default cdk.out, as `make synth` "
                             "writes it)")
    args = parser.parse_args(argv)
    config, trace = load_inputs(args, args.trace)
    templates = costs.stage_templates(args.cdk_out, config.name)
    if templates is None:
        raise Exit(EXIT_USAGE, f"{args.cdk_out} has no {config.name} stage: run `make synth` "
                               f"(or `make synth ENV={config.name}`) first, or pass --cdk-out DIR")
    results, hours = None, 0.0
    if trace is not None:
        results = run(config, trace, args.seed)
        hours = trace.minutes / 60
    est = costs.estimate(config, costs.inventory_from_templates(templates), costs.load_prices(),
                         results, hours, trace.name if trace else None)
    print(costs.format_estimate(est))
    return 0
