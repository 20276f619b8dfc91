"""cdk-nag's NIST 800-53 rev5, HIPAA Security, PCI DSS 3.2.1 and Serverless packs in report mode.

They never fail a synth (only AwsSolutions does, and `make synth` does not run these): the tests
run them once per session over the synthesized stages with `NagPack.validate_scope`, print the
findings per rule, and fail when a rule has more findings than `nag_baseline.json` allows.

    make nag-baseline      # rewrite the baseline on purpose, printing what changed
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import aws_cdk as cdk
import cdk_nag

BASELINE_FILE = Path(__file__).resolve().parent.parent / "nag_baseline.json"


def report_packs() -> list[cdk_nag.NagPack]:
    return [cdk_nag.NIST80053R5Checks(), cdk_nag.HIPAASecurityChecks(), cdk_nag.PCIDSS321Checks(),
            cdk_nag.ServerlessChecks()]


def findings(stages: Iterable[cdk.Stage]) -> list[tuple[str, str]]:
    """(rule id, construct path) of every unacknowledged finding of the report packs."""
    found = []
    for pack in report_packs():
        for stage in stages:
            for violation in pack.validate_scope(stage).violations:
                found += [(violation.rule_name, r.construct_path or r.resource_logical_id or "")
                          for r in violation.violating_resources]
    return found


def counts(found: list[tuple[str, str]]) -> dict[str, int]:
    return dict(sorted(Counter(rule for rule, _ in found).items()))


def grown(baseline: dict[str, int], current: dict[str, int]) -> list[str]:
    """Rules with more findings than the baseline allows."""
    return [f"{rule}: {current[rule]} (baseline {baseline.get(rule, 0)})"
            for rule in sorted(current) if current[rule] > baseline.get(rule, 0)]


def load(path: Path = BASELINE_FILE) -> dict[str, int]:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> int:
    import tempfile

    from cdk_app.app import add_environments, feature_flags, select_environments

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(context=feature_flags(), outdir=outdir)
        stages = add_environments(app, select_environments(None))
        app.synth()
        current = counts(findings(stages))
    old = load()
    for rule in sorted(old.keys() | current.keys()):
        if old.get(rule, 0) != current.get(rule, 0):
            print(f"{rule}: {old.get(rule, 0)} -> {current.get(rule, 0)}")
    BASELINE_FILE.write_text(json.dumps(current, indent=1) + "\n")
    print(f"wrote {BASELINE_FILE.name}: {sum(current.values())} findings over {len(current)} rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
