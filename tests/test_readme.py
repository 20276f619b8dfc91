"""The README stays true: Quick start has the two commands, the reference lists every field."""

from __future__ import annotations

from pathlib import Path

from jobfleet_config.config import describe_fields

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quick_start_has_exactly_the_two_commands():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make synth", "make test"]


def test_configuration_reference_lists_every_field():
    reference = README.split("### Configuration reference", 1)[1]
    for section, rows in describe_fields().items():
        heading = "[[tiers]]" if section == "tiers" else f"[{section}]"
        part = reference.split(f"**`{heading}`**", 1)[1].split("**`[", 1)[0]
        for name, *_ in rows:
            assert f"| `{name}` |" in part, f"{heading} {name} missing from the README"
