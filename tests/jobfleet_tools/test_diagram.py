"""The architecture diagram in the README is generated from the synthesized app and kept current."""

from __future__ import annotations

import json
from pathlib import Path

from jobfleet_tools.diagram import build_dot

ROOT = Path(__file__).resolve().parents[2]


def _prod_assembly(outdir: Path) -> Path:
    manifest = json.loads((outdir / "manifest.json").read_text())
    (stage,) = [a for a in manifest["artifacts"].values() if a["type"] == "cdk:cloud-assembly"
                and a["properties"]["displayName"] == "prod"]
    return outdir / stage["properties"]["directoryName"]


def test_committed_diagram_matches_the_app(synthesized):
    outdir, _ = synthesized
    dot = build_dot(_prod_assembly(outdir), "prod")
    committed = (ROOT / "docs" / "architecture.dot").read_text()
    assert dot == committed, "regenerate with `make diagram` and commit docs/architecture.*"
    assert (ROOT / "docs" / "architecture.png").stat().st_size > 10_000


def test_diagram_shows_the_flow_from_api_to_workers_through_queues(synthesized):
    outdir, _ = synthesized
    dot = build_dot(_prod_assembly(outdir), "prod")
    for label in ("ALB", "ECS service\\njobfleet-prod-api", "SQS\\njobfleet-prod-critical",
                  "Lambda\\njobfleet-prod-batch-feed", "Batch job queue", "Lambda\\njobfleet-prod-redrive"):
        assert label in dot, label
    assert dot.count("->") > 10
