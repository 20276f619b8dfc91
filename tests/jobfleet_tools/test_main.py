"""`python -m jobfleet_tools`: a table of subcommands, one line and exit 2 for a bad one."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from jobfleet_tools.__main__ import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def test_every_command_is_a_module_with_main():
    assert set(COMMANDS) >= {"local", "redrive", "diagram", "summary", "simulate", "cost"}
    for module, _help in COMMANDS.values():
        assert callable(importlib.import_module(module).main)


def test_unknown_command_and_missing_arguments_exit_2_with_one_line(capsys):
    assert main(["deploy"]) == 2
    assert capsys.readouterr().err == (
        "python -m jobfleet_tools: unknown command 'deploy' (commands: local, redrive, diagram, summary, "
        "simulate, cost, platforms, image-smoke)\n")
    assert main(["diagram", "cdk.out"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_summary_runs_as_a_module(synthesized):
    outdir, _ = synthesized
    result = subprocess.run([sys.executable, "-m", "jobfleet_tools", "summary", str(outdir)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "== prod:" in result.stdout and "AWS::SQS::Queue" in result.stdout
