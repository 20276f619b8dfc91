"""checkov over every synthesized template (its own venv: it breaks pytest 9 in ours).

No failed check is allowed; every skipped check must carry a comment (the reason), written next
to the resource by stacks.checkov.skip_check. The totals are printed (`pytest -s` shows them; they
are also in the test report on failure).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov_report(assemblies):
    if not CHECKOV.exists():
        pytest.fail("checkov is missing: `make test` installs it into .venv-checkov")
    directories = [arg for outdir in assemblies for arg in ("-d", str(outdir))]
    result = subprocess.run(
        [str(CHECKOV), *directories, "--framework", "cloudformation",
         "-o", "json", "--skip-download"],
        capture_output=True, text=True, timeout=600, check=False)
    # One JSON document per -d directory, printed one after the other.
    decoder, text, position, reports = json.JSONDecoder(), result.stdout.strip(), 0, []
    while position < len(text):
        document, position = decoder.raw_decode(text, position)
        reports += document if isinstance(document, list) else [document]
        position = len(text) - len(text[position:].lstrip())
    found = [r for r in reports if r.get("check_type") == "cloudformation"]
    assert len(found) == len(assemblies), result.stderr[-2000:]
    report = {"summary": {key: sum(r["summary"][key] for r in found)
                          for key in ("passed", "failed", "skipped", "resource_count")},
              "results": {key: [item for r in found for item in r["results"][key]]
                          for key in ("failed_checks", "skipped_checks")}}
    summary = report["summary"]
    print(f"\ncheckov: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} skipped over {summary['resource_count']} resources")
    return report


def test_checkov_reports_no_failed_check(checkov_report):
    failed = [f"{f['check_id']} {f['check_name']}: {f['file_path']} {f['resource']}"
              for f in checkov_report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert checkov_report["summary"]["passed"] > 50


def test_every_skipped_check_has_a_reason(checkov_report):
    for skipped in checkov_report["results"]["skipped_checks"]:
        comment = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(comment) >= 40, (skipped["check_id"], skipped["resource"], comment)
