"""`python -m jobfleet_tools <command> [args]`: one entry per command, each a module with main(argv)."""

from __future__ import annotations

import importlib
import sys

# name -> (module exposing `main(argv: list[str]) -> int`, one-line help). Add a command here.
COMMANDS: dict[str, tuple[str, str]] = {
    "local": ("jobfleet_tools.local.cli", "run the whole platform on this machine (moto, API, workers)"),
    "redrive": ("jobfleet_tools.ops", "send a tier's dead-lettered jobs back to its queue"),
    "diagram": ("jobfleet_tools.diagram", "architecture diagram of a synthesized environment"),
    "summary": ("jobfleet_tools.summary", "stacks and resource counts of cdk.out"),
    "simulate": ("jobfleet_tools.capacity.simulate_cli", "replay a load trace: waits per tier vs objective"),
    "cost": ("jobfleet_tools.capacity.cost_cli", "monthly cost of an environment vs the single box"),
    "platforms": ("jobfleet_tools.platforms", "image platforms an environment runs (for Buildx)"),
    "image-smoke": ("jobfleet_tools.image_smoke",
                    "run the built worker image as ECS and Batch would (CI; needs Docker)"),
}
PROG = "python -m jobfleet_tools"


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} <command> [args]", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_text}" for name, (_module, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"{PROG}: unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    # Imported on demand: `summary` must not pay for boto3, `local` for nothing it does not run.
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
