"""The committed record of every stateful resource, and what a change would do to it.

A queue, DLQ, table, key or bucket is replaced (its data gone, or left behind in a retained
orphan) when its logical ID changes or when a property that CloudFormation can only change by
replacement changes. `stateful_resources.json` at the repository root records, per environment
and stack, each such resource's logical ID and those properties; tests/stacks/test_stateful_record.py
fails on any difference, so a replacement is never an accident.

    make stateful-record     # synthesize, print what changed, rewrite the record (on purpose)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RECORD_FILE = Path(__file__).resolve().parent.parent / "stateful_resources.json"
# Resource type -> the properties whose change requires replacement (CloudFormation reference,
# "Update requires: Replacement").
REPLACED_BY = {
    "AWS::SQS::Queue": ("QueueName", "FifoQueue"),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::DynamoDB::GlobalTable": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::KMS::Key": ("KeySpec", "KeyUsage", "MultiRegion"),
    "AWS::S3::Bucket": ("BucketName",),
}


def record(assembly: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{"<env>/<stack>": {logical id: {"Type": ..., <replacing property>: value}}}."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        stage_dir = assembly / artifact["properties"]["directoryName"]
        stage = json.loads((stage_dir / "manifest.json").read_text())
        for stack in stage["artifacts"].values():
            if stack["type"] != "aws:cloudformation:stack":
                continue
            template = json.loads((stage_dir / stack["properties"]["templateFile"]).read_text())
            resources = {}
            for logical_id, resource in template.get("Resources", {}).items():
                keys = REPLACED_BY.get(resource["Type"])
                if keys is not None:
                    props = resource.get("Properties", {})
                    resources[logical_id] = {"Type": resource["Type"],
                                             **{k: props[k] for k in keys if k in props}}
            if resources:
                result[stack["displayName"]] = dict(sorted(resources.items()))
    return dict(sorted(result.items()))


def changes(old: dict, new: dict) -> list[str]:
    """One line per stateful resource that would be deleted, replaced or is new."""
    lines = []
    for stack in sorted(old.keys() | new.keys()):
        before, after = old.get(stack, {}), new.get(stack, {})
        for logical_id in sorted(before.keys() | after.keys()):
            was, now = before.get(logical_id), after.get(logical_id)
            if now is None:
                lines.append(f"DELETED  {stack} {logical_id} ({was['Type']}): logical ID gone; "
                             "renamed or removed, so its data is deleted or orphaned")
            elif was is None:
                lines.append(f"NEW      {stack} {logical_id} ({now['Type']})")
            elif was != now:
                changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
                detail = "; ".join(f"{k}: {json.dumps(was.get(k))} -> {json.dumps(now.get(k))}"
                                   for k in changed)
                lines.append(f"REPLACED {stack} {logical_id} ({now['Type']}): {detail}")
    return lines


def load(path: Path = RECORD_FILE) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def write(data: dict, path: Path = RECORD_FILE) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Synthesize every environment, print the changes against the record, rewrite it."""
    import tempfile

    import aws_cdk as cdk

    from cdk_app.app import add_environments, feature_flags, select_environments

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(context=feature_flags(), outdir=outdir)
        add_environments(app, select_environments(None))
        app.synth()
        new = record(Path(outdir))
    lines = changes(load(), new)
    print("\n".join(lines) if lines else "stateful record: no change")
    write(new)
    print(f"wrote {RECORD_FILE.name}: {sum(len(r) for r in new.values())} stateful resources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
