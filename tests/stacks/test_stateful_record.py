"""No queue, DLQ, table, key or bucket is replaced or deleted by accident.

The synthesized stateful resources (logical IDs + replacement-causing properties) must equal the
committed stateful_resources.json; `make stateful-record` regenerates it on purpose and prints
what changed.
"""

from __future__ import annotations

from cdk_app.stateful_record import changes, load, record


def test_stateful_resources_match_the_committed_record(synthesized):
    outdir, _ = synthesized
    lines = changes(load(), record(outdir))
    assert not lines, ("stateful resources differ from stateful_resources.json; if this is on "
                       "purpose, run `make stateful-record` and commit it:\n" + "\n".join(lines))


def test_record_covers_every_environment_and_kind(synthesized):
    current = record(synthesized[0])
    assert {stack.split("/")[0] for stack in current} == {"dev", "staging", "prod"}
    kinds = {r["Type"] for stack in current.values() for r in stack.values()}
    assert kinds == {"AWS::SQS::Queue", "AWS::DynamoDB::GlobalTable", "AWS::KMS::Key",
                     "AWS::S3::Bucket"}
    queue = next(r for r in current["prod/Stateful"].values() if r["Type"] == "AWS::SQS::Queue")
    assert queue["QueueName"].startswith("jobfleet-prod-")


def test_changes_name_renames_deletions_and_replacing_properties():
    old = {"prod/Stateful": {"QueueA1": {"Type": "AWS::SQS::Queue", "QueueName": "q"},
                             "Table1": {"Type": "AWS::DynamoDB::GlobalTable", "TableName": "t"}}}
    new = {"prod/Stateful": {"QueueB2": {"Type": "AWS::SQS::Queue", "QueueName": "q"},
                             "Table1": {"Type": "AWS::DynamoDB::GlobalTable", "TableName": "t2"}}}
    lines = changes(old, new)
    assert lines[0].startswith("DELETED  prod/Stateful QueueA1 (AWS::SQS::Queue)")
    assert lines[1] == "NEW      prod/Stateful QueueB2 (AWS::SQS::Queue)"
    assert lines[2] == 'REPLACED prod/Stateful Table1 (AWS::DynamoDB::GlobalTable): TableName: "t" -> "t2"'
    assert changes(old, old) == []


def test_prod_network_and_stateful_stacks_are_termination_protected(stages):
    prod = stages["prod"]
    assert prod.network.termination_protection and prod.stateful.termination_protection
