"""cdk-nag's NIST 800-53 rev5, HIPAA Security, PCI DSS 3.2.1 and Serverless packs, report mode.

Run once per session over the already-synthesized stages (never in `make synth`). The findings per
rule are printed (`pytest -s`); the test fails when a rule has more findings than the committed
nag_baseline.json, so the baseline only shrinks (`make nag-baseline` rewrites it on purpose).
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs

from cdk_app.nag_report import counts, findings, grown, load
from stacks.nag import REPORT_PACKS, acknowledge_report


@pytest.fixture(scope="module")
def report(stages):
    found = findings(stages.values())
    current = counts(found)
    print(f"\ncdk-nag report packs ({', '.join(REPORT_PACKS)}): {len(found)} findings")
    for rule, count in current.items():
        print(f"  {count:4d}  {rule}")
    return found, current


def test_report_packs_do_not_grow_beyond_the_baseline(report):
    found, current = report
    more = grown(load(), current)
    where = {rule: sorted({path for r, path in found if r == rule})
             for rule in current if any(line.startswith(rule + ":") for line in more)}
    assert not more, "\n".join(more) + "\n" + "\n".join(f"{r}: {p}" for r, p in where.items())


def test_every_pack_ran(report):
    _, current = report
    assert {rule.split("-")[0] for rule in current} <= set(REPORT_PACKS)
    assert any(rule.startswith("NIST.800.53.R5-") for rule in current)


def test_the_redirect_only_listener_is_not_reported(report):
    found, _ = report
    assert not [p for r, p in found if r.endswith("ELBv2ACMCertificateRequired") and "Redirect" in p]


def test_an_acknowledgment_silences_its_rule_in_every_report_pack():
    app = cdk.App()
    stage = cdk.Stage(app, "probe")
    stack = cdk.Stack(stage, "Probe")
    quiet = sqs.Queue(stack, "Acknowledged", enforce_ssl=True)
    sqs.Queue(stack, "Reported", enforce_ssl=True)
    acknowledge_report(quiet, "SQSRedrivePolicy", "A probe queue acknowledged with a long reason.")
    paths = [p for rule, p in findings([stage]) if rule == "Serverless-SQSRedrivePolicy"]
    assert paths == ["probe/Probe/Reported/Resource"]
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge_report(quiet, "SQSRedrivePolicy", "short")
