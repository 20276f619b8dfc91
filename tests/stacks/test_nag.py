"""cdk-nag gate: the pack runs on every stage, a finding fails synth, every acknowledgment has a reason."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs

from cdk_app.app import add_environments, feature_flags, select_environments
from stacks.nag import REPORT_PACKS, acknowledge
from stacks.reasons import MIN_REASON_CHARS

GENERIC_REASONS = ("todo", "n/a", "na", "ok", "fine", "ignore", "suppressed", "not needed")


def _acknowledgments(stage: cdk.Stage):
    """(construct path, "<pack>::<rule>", reason) for every acknowledgment under the stage."""
    for construct in stage.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry.data.items():
                    yield construct.node.path, rule, reason


def test_every_acknowledgment_names_a_rule_and_a_specific_reason(stages, team_synthesized):
    for stage in [*stages.values(), team_synthesized[1]]:
        for path, rule, reason in _acknowledgments(stage):
            report_pack = rule.split("-", 1)[0] in REPORT_PACKS  # stacks.nag.acknowledge_report
            if not (rule.startswith("AwsSolutions::") or report_pack):
                continue  # aws-cdk-lib's own CloudFormation-Validate acknowledgments
            assert report_pack or rule.startswith("AwsSolutions::AwsSolutions-"), (path, rule)
            assert len(reason.strip()) >= MIN_REASON_CHARS, (path, rule, reason)
            assert reason.strip().lower() not in GENERIC_REASONS, (path, rule, reason)


def test_acknowledgments_are_visible_to_the_reason_check():
    app = cdk.App()
    stage = cdk.Stage(app, "probe")
    acknowledge(stage, "IAM5", "A reason long enough to pass the minimum length check.")
    found = [rule for _, rule, _ in _acknowledgments(stage)]
    assert found == ["AwsSolutions::AwsSolutions-IAM5"]


def test_acknowledge_refuses_a_vague_reason():
    app = cdk.App()
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(app, "IAM5", "needed")


def test_an_acknowledgment_silences_exactly_its_rule(tmp_path):
    app = cdk.App(context=feature_flags(), outdir=str(tmp_path))
    (stage,) = add_environments(app, select_environments("dev"))
    queue = sqs.Queue(stage.stateful, "UnprotectedQueue", enforce_ssl=True)
    acknowledge(queue, "SQS3", "Probe queue of this test: proves an acknowledgment takes effect.")
    app.synth()


def test_a_finding_fails_synth(tmp_path):
    """The gate can fail: a plain queue (no DLQ, no TLS policy) in a stage stops the synth."""
    app = cdk.App(context=feature_flags(), outdir=str(tmp_path))
    (stage,) = add_environments(app, select_environments("dev"))
    sqs.Queue(stage.stateful, "UnprotectedQueue")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS4" in report and "UnprotectedQueue" in report
