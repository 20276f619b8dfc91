"""cfn-lint over every synthesized template: zero errors, and no warning without a written reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CFN_LINT = Path(sys.executable).parent / "cfn-lint"

# Warnings ignored, each with its reason.
IGNORED_WARNINGS = {
    "W3005": "redundant DependsOn emitted by aws-cdk-lib itself (custom-resource providers, and "
             "ECS services that must wait for their listener); harmless and not ours to remove",
}


def _lint(templates: list[str]) -> list[dict]:
    result = subprocess.run([str(CFN_LINT), "--format", "json", "--regions", "us-east-1", "--", *templates],
                            capture_output=True, text=True, check=False)
    # Exit codes: 0 clean, bit 2 errors, bit 4 warnings, bit 8 informational; anything else broke.
    assert result.returncode in range(16), result.stderr
    assert result.stdout.strip().startswith("["), f"cfn-lint did not report: {result.stderr}"
    return json.loads(result.stdout)


def test_cfn_lint_reports_no_errors_and_no_unexplained_warnings(assemblies):
    templates = sorted(str(p) for outdir in assemblies for p in outdir.glob("assembly-*/*.template.json"))
    assert len(templates) >= 20
    problems = [f"{f['Filename']}: {f['Level']} {f['Rule']['Id']} {f['Message']}"
                for f in _lint(templates)
                if f["Level"] == "Error" or f["Rule"]["Id"] not in IGNORED_WARNINGS]
    assert not problems, "\n".join(problems)


def test_cfn_lint_catches_a_broken_template(tmp_path):
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {
        "VisibilityTimeout": "soon"}}}}))
    findings = _lint([str(broken)])
    assert any(f["Level"] == "Error" for f in findings)
