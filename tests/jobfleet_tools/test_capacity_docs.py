"""The tables and charts in docs/scaling.md and the README are what the commands produce.

Each `<!-- generated: simulate|cost ARGS -->` ... `<!-- end generated -->` block is recomputed
here; on a mismatch the assertion shows the block to paste. The committed PNGs are re-rendered
and compared byte for byte (matplotlib is pinned; the chart carries no date).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobfleet_config.config import load_environment
from jobfleet_tools.capacity import cost
from jobfleet_tools.capacity.chart import write_chart
from jobfleet_tools.capacity.cli import format_results, run_title
from jobfleet_tools.capacity.simulate import simulate
from jobfleet_tools.capacity.trace import load

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "scaling.md", ROOT / "README.md"]
BLOCK = re.compile(r"<!-- generated: (simulate|cost) (.*?) -->\n(.*?)<!-- end generated -->", re.S)
SEED = 1


def _blocks() -> list[tuple[Path, str, str, str]]:
    found = [(path, *match.groups()) for path in DOCS for match in BLOCK.finditer(path.read_text())]
    assert {p.name for p, *_ in found} == {"scaling.md", "README.md"}
    return found


def _args(text: str) -> dict[str, str]:
    words = text.split()
    return dict(zip(words[::2], words[1::2], strict=True))


def expected_block(kind: str, text: str, outdir: Path) -> str:
    args = _args(text)
    config = load_environment(args["--env"])
    trace = load(args["--trace"], set(config.job_types))
    results = simulate(config, trace, seed=SEED)
    if kind == "simulate":
        return (f"```text\n$ python -m jobfleet_tools simulate {text}\n"
                f"{format_results(results)}\n```\n")
    inventory = cost.inventory_from_templates(cost.stage_templates(outdir, config.name))
    estimate = cost.estimate(config, inventory, cost.load_prices(), results, trace.minutes / 60,
                             trace.name)
    return cost.format_estimate(estimate) + "\n"


@pytest.mark.parametrize(("path", "kind", "args", "body"), _blocks(),
                         ids=lambda v: v.name if isinstance(v, Path) else None)
def test_generated_block_is_current(synthesized, path, kind, args, body):
    expected = expected_block(kind, args, Path(synthesized[0]))
    assert body == expected, f"{path.name}: replace the `{kind} {args}` block with:\n{expected}"


@pytest.mark.parametrize("trace_name", ["weekday", "nightly", "week"])
def test_committed_chart_is_what_simulate_draws(tmp_path, trace_name):
    config = load_environment("prod")
    trace = load(trace_name, set(config.job_types))
    drawn = write_chart(simulate(config, trace, seed=SEED),
                        run_title(config, trace, SEED, api_wake=True), tmp_path / "chart.png")
    committed = ROOT / "docs" / "capacity" / f"prod-{trace_name}.png"
    assert drawn.read_bytes() == committed.read_bytes(), (
        f"regenerate: python -m jobfleet_tools simulate --env prod --trace {trace_name} "
        f"--chart {committed.relative_to(ROOT)}")
