"""AWS Control Tower proactive controls (CloudFormation Guard rules) over every environment.

The rules and the cfn-guard binary come from the `cdklabs-cdk-validator-cfnguard` wheel (its jsii
tarball bundles `bin/ubuntu/x86_64/cfn-guard` and `rules/control-tower/`). cdk-validator-cfnguard's
own policy-validation plugin crashes on the prod stage (the listener certificate is a parameter
reference), so cfn-guard runs directly over the synthesized templates, once per session.

Gate: every failure is acknowledged on its resource (`Metadata.guard`, written by
stacks.guard.suppress, the reason at least 40 characters), and every acknowledgment matches a
failure (no stale ones). Counts per control are printed (`pytest -s`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from stacks.reasons import MIN_REASON_CHARS

_CONTROL = re.compile(r"\[(CT\.[A-Z0-9]+\.PR\.\d+)\]")
# The first test pays for the session synth and for cfn-guard over ~15 templates (minutes on a
# shared 2-core machine).
pytestmark = pytest.mark.timeout(900)


def _bundle(destination: Path) -> tuple[Path, Path]:
    """(cfn-guard binary, Control Tower rules directory) unpacked from the installed wheel."""
    spec = importlib.util.find_spec("cdklabs.cdk_validator_cfnguard")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("cdklabs-cdk-validator-cfnguard is missing: `make test` installs it")
    (tarball,) = Path(spec.submodule_search_locations[0], "_jsii").glob("*.tgz")
    wanted = ("package/bin/ubuntu/x86_64/cfn-guard", "package/rules/control-tower/cfn-guard/")
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(wanted)]
        archive.extractall(destination, members=members, filter="data")
    package = destination / "package"
    return package / "bin/ubuntu/x86_64/cfn-guard", package / "rules/control-tower/cfn-guard"


def _failures(node, control, found: set) -> None:
    """(control id, logical id) of every failed check under one not-compliant rule."""
    if isinstance(node, dict):
        message = (node.get("messages") or {}).get("custom_message") or ""
        match = _CONTROL.search(message)
        control = match.group(1) if match else control
        for key, value in node.items():
            if key == "path" and isinstance(value, str) and value.startswith("/Resources/"):
                found.add((control, value.split("/")[2]))
            else:
                _failures(value, control, found)
    elif isinstance(node, list):
        for item in node:
            _failures(item, control, found)


@pytest.fixture(scope="module")
def guard(synthesized, tmp_path_factory):
    """{(template file, logical id, control)} failures and {same: reason} acknowledgments."""
    outdir, _ = synthesized
    binary, rules = _bundle(tmp_path_factory.mktemp("cfn-guard"))
    templates = sorted(outdir.glob("assembly-*/*.template.json"))
    # One process per environment, run side by side.
    runs = {}
    for assembly in sorted(outdir.glob("assembly-*")):
        data = [a for t in sorted(assembly.glob("*.template.json")) for a in ("--data", str(t))]
        runs[assembly.name] = subprocess.Popen(
            [str(binary), "validate", "--rules", str(rules), *data, "--output-format", "json",
             "--show-summary", "none", "--structured"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures = set()
    for name, process in runs.items():
        stdout, stderr = process.communicate(timeout=600)
        # Exit code 19 = some rule failed; anything else but 0 is cfn-guard itself failing.
        assert process.returncode in (0, 19), f"cfn-guard on {name}: {stderr[-2000:]}"
        for report in json.loads(stdout):
            template = Path(report["name"]).name
            for rule in report["not_compliant"]:
                found: set = set()
                _failures(rule, None, found)
                failures |= {(template, logical_id, control) for control, logical_id in found}
    acknowledged = {}
    for path in templates:
        for logical_id, resource in json.loads(path.read_text())["Resources"].items():
            metadata = resource.get("Metadata", {}).get("guard", {})
            for control in metadata.get("SuppressedRules", []):
                acknowledged[(path.name, logical_id, control)] = metadata.get("Reasons", {}).get(control, "")
    counts = Counter(control for _, _, control in failures)
    print("\ncfn-guard (Control Tower): "
          f"{len(failures)} failures over {len(templates)} templates, "
          f"{len(failures - acknowledged.keys())} unacknowledged; per control: "
          + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))
    return failures, acknowledged


def test_control_tower_controls_report_no_unacknowledged_failure(guard):
    failures, acknowledged = guard
    missing = sorted(failures - acknowledged.keys())
    assert not missing, "\n".join(f"{c} on {r} in {t}" for t, r, c in missing)


def test_every_acknowledgment_has_a_reason_and_matches_a_failure(guard):
    failures, acknowledged = guard
    for (template, logical_id, control), reason in acknowledged.items():
        assert len(reason) >= MIN_REASON_CHARS, (template, logical_id, control, reason)
    stale = sorted(acknowledged.keys() - failures)
    assert not stale, "acknowledged but passing: " + "; ".join(f"{c} on {r} in {t}" for t, r, c in stale)


def test_guard_runs_every_control_tower_rule(guard, tmp_path):
    _, rules = _bundle(tmp_path)
    assert len(list(rules.rglob("*.guard"))) > 200
