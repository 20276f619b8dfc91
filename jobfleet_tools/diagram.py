"""Architecture diagram generated from a synthesized environment (Graphviz DOT, rendered to PNG).

    python -m jobfleet_tools diagram cdk.out prod docs/architecture   # writes .dot (and .png with `dot`)

One cluster per stack; one node per resource that matters to an operator; an edge wherever a
resource's properties reference another one, directly, through its IAM policies (who may use what)
or across stacks through exports. The DOT text is deterministic, so a test can check that the
committed diagram still matches the app.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Resource types drawn, with their label prefix.
SHOWN = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "ALB",
    "AWS::ECS::Service": "ECS service",
    "AWS::ECS::Cluster": "ECS cluster",
    "AWS::SQS::Queue": "SQS",
    "AWS::DynamoDB::GlobalTable": "DynamoDB",
    "AWS::DynamoDB::Table": "DynamoDB",
    "AWS::Pipes::Pipe": "EventBridge Pipe",
    "AWS::Batch::JobQueue": "Batch job queue",
    "AWS::Batch::ComputeEnvironment": "Batch compute",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::Lambda::Function": "Lambda",
    "AWS::SNS::Topic": "SNS",
    "AWS::CloudWatch::Dashboard": "Dashboard",
    "AWS::S3::Bucket": "S3",
    "AWS::EC2::VPC": "VPC",
}
# Resources that act through another one: their references are drawn from that one.
ACTS_THROUGH = {"AWS::ECS::TaskDefinition", "AWS::IAM::Policy", "AWS::IAM::Role",
                "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::TargetGroup",
                "AWS::Batch::JobDefinition"}


def _refs(value: Any) -> set[str]:
    """Logical ids and export names referenced anywhere inside a template value."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::ImportValue" and isinstance(inner, str):
                found.add("export:" + inner)
            elif key == "Fn::GetStackOutput" and isinstance(inner, dict):
                # aws-cdk-lib's weak cross-stack references (defaultCrossStackReferences = weak)
                found.add(f"export:{inner['StackName']}:{inner['OutputName']}")
            else:
                found |= _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _refs(inner)
    return found


def _label(rtype: str, logical_id: str, props: dict) -> str:
    name = (props.get("QueueName") or props.get("ServiceName") or props.get("TableName")
            or props.get("Name") or props.get("FunctionName") or props.get("JobQueueName")
            or props.get("DashboardName"))
    if not isinstance(name, str):
        name = logical_id[:-8] if len(logical_id) > 8 and logical_id[-8:].isalnum() else logical_id
    return f"{SHOWN[rtype]}\\n{name}"


def build_dot(assembly_dir: Path, environment: str) -> str:
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    stacks = sorted((a["displayName"], assembly_dir / a["properties"]["templateFile"],
                     a["properties"].get("stackName", a["displayName"]))
                    for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack")
    nodes: dict[str, tuple[str, str]] = {}       # node id -> (stack, label)
    owner: dict[str, str] = {}                   # node id of an acting resource -> shown node id
    exports: dict[str, str] = {}                 # export name -> node id
    raw_edges: list[tuple[str, set[str], str]] = []
    templates = {display: json.loads(path.read_text()) for display, path, _ in stacks}
    stack_names = {display: name for display, _, name in stacks}
    for display, template in templates.items():
        prefix = display.replace("/", "_")
        resources = template.get("Resources", {})
        for logical_id, resource in resources.items():
            # aws-cdk-lib's deployment helpers are not part of the architecture.
            if resource["Type"] in SHOWN and "CustomResourceProvider" not in logical_id:
                nodes[f"{prefix}_{logical_id}"] = (display, _label(resource["Type"], logical_id,
                                                                   resource.get("Properties", {})))
        for name, output in template.get("Outputs", {}).items():
            referenced = _refs(output["Value"])
            if len(referenced) != 1:
                continue
            export = output.get("Export", {}).get("Name")
            if isinstance(export, str):
                exports["export:" + export] = f"{prefix}_{next(iter(referenced))}"
            exports[f"export:{stack_names[display]}:{name}"] = f"{prefix}_{next(iter(referenced))}"
        for logical_id, resource in resources.items():
            node_id = f"{prefix}_{logical_id}"
            refs = {r if r.startswith("export:") else f"{prefix}_{r}"
                    for r in _refs(resource.get("Properties", {}))}
            raw_edges.append((node_id, refs, resource["Type"]))
    # Acting resources (task definitions, roles, policies, listeners) attach to the shown
    # resource that references them; iterate until stable to follow policy -> role -> service.
    acting = {n: refs for n, refs, rtype in raw_edges if rtype in ACTS_THROUGH}
    for _ in range(4):
        for source, refs, _rtype in raw_edges:
            for ref in refs:
                if ref in acting and ref not in owner:
                    holder = source if source in nodes else owner.get(source)
                    if holder:
                        owner[ref] = holder
        for source, refs, _rtype in raw_edges:
            if source in acting and source not in owner:
                # A policy references its role; the role's holder owns the policy too.
                for ref in refs:
                    if ref in owner:
                        owner[source] = owner[ref]
    edges: set[tuple[str, str]] = set()
    for source, refs, _rtype in raw_edges:
        origin = source if source in nodes else owner.get(source)
        # A dashboard references every metric source: its edges would hide the architecture.
        if not origin or nodes[origin][1].startswith("Dashboard"):
            continue
        for ref in refs:
            target: str | None = exports.get(ref, ref)
            target = target if target in nodes else None
            if target and target != origin and not target.endswith("Vpc") and "VPC" not in nodes[target][1]:
                edges.add((origin, target))
    lines = [f'digraph "JobFleet {environment}" {{', "  rankdir=LR;", "  compound=true;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f5f7fa", fontname="Helvetica"];',
             '  edge [color="#5a6b7b"];']
    for index, display in enumerate(templates):
        members = sorted(n for n, (stack, _) in nodes.items() if stack == display)
        if not members:
            continue
        lines.append(f'  subgraph cluster_{index} {{ label="{display}"; style=rounded; color="#9aa5b1";')
        lines.extend(f'    "{n}" [label="{nodes[n][1]}"];' for n in members)
        lines.append("  }")
    lines.extend(f'  "{a}" -> "{b}";' for a, b in sorted(edges))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m jobfleet_tools diagram CDK_OUT ENVIRONMENT TARGET", file=sys.stderr)
        return 2
    outdir, environment, target = Path(argv[0]), argv[1], Path(argv[2])
    manifest = json.loads((outdir / "manifest.json").read_text())
    (stage,) = [a for a in manifest["artifacts"].values() if a["type"] == "cdk:cloud-assembly"
                and a["properties"]["displayName"] == environment]
    dot = build_dot(outdir / stage["properties"]["directoryName"], environment)
    target.with_suffix(".dot").write_text(dot)
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tpng", "-Gdpi=110", "-o", str(target.with_suffix(".png"))],
                       input=dot, text=True, check=True)
    else:
        print("graphviz `dot` not found: wrote only the .dot file", file=sys.stderr)
    return 0
