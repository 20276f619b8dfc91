"""Print what `cdk synth` produced: per environment, its stacks and resources by type, and the
estimated fixed monthly cost of what it contains (jobfleet_tools.capacity.cost)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from jobfleet_config.config import ConfigError, load_environment
from jobfleet_tools.capacity import cost


def summarize(outdir: Path) -> str:
    manifest = json.loads((outdir / "manifest.json").read_text())
    lines = []
    prices = cost.load_prices()
    for stage_id, artifact in sorted(manifest["artifacts"].items()):
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        stage_dir = outdir / artifact["properties"]["directoryName"]
        stage_manifest = json.loads((stage_dir / "manifest.json").read_text())
        stacks = {name: a for name, a in stage_manifest["artifacts"].items()
                  if a["type"] == "aws:cloudformation:stack"}
        env = artifact["properties"].get("displayName", stage_id)
        lines.append(f"== {env}: {len(stacks)} stacks")
        templates = []
        for name, stack in sorted(stacks.items()):
            template = json.loads((stage_dir / stack["properties"]["templateFile"]).read_text())
            templates.append(template)
            types = Counter(r["Type"] for r in template.get("Resources", {}).values()
                            if r["Type"] != "AWS::CDK::Metadata")
            lines.append(f"  {stack.get('displayName', name)} ({sum(types.values())} resources)")
            lines.extend(f"    {count:3d}  {rtype}" for rtype, count in sorted(types.items()))
        try:
            config = load_environment(env)
        except ConfigError as exc:
            lines.append(f"  estimated fixed cost: n/a ({exc})")
            continue
        estimate = cost.estimate(config, cost.inventory_from_templates(templates), prices)
        lines.append(cost.fixed_summary_line(estimate))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    print(summarize(Path(argv[0] if argv else "cdk.out")))
    return 0
