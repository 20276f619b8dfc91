"""cfn-lint over every synthesized template: zero errors.

Warnings ignored (each with its reason):
- none yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

IGNORED_CHECKS: dict[str, str] = {}


def test_cfn_lint_reports_no_errors(synthesized):
    outdir, _ = synthesized
    templates = sorted(str(p) for p in outdir.glob("assembly-*/*.template.json"))
    assert len(templates) >= 6
    command = [sys.executable, "-m", "cfnlint", "--format", "json", "--regions", "us-east-1"]
    if IGNORED_CHECKS:
        command += ["--ignore-checks", *IGNORED_CHECKS]
    result = subprocess.run([*command, "--", *templates], capture_output=True, text=True, check=False)
    findings = json.loads(result.stdout or "[]")
    problems = [f"{f['Filename']}: {f['Rule']['Id']} {f['Message']}" for f in findings]
    assert not problems, "\n".join(problems)
