"""The dependency graph points one way: contract/config at the bottom, runtimes and stacks on them,
the CDK app on the stacks, tools beside. A test walks every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# package -> (its directory, the project packages it may import)
PACKAGES = {
    "jobfleet_contract": (REPO / "jobfleet_contract", set()),
    "jobfleet_config": (REPO / "jobfleet_config", set()),
    "worker": (REPO / "worker_image" / "worker", {"jobfleet_contract"}),
    "redrive": (REPO / "lambda" / "redrive", {"jobfleet_contract"}),
    "batch_submit": (REPO / "lambda" / "batch_submit", {"jobfleet_contract"}),
    "stacks": (REPO / "stacks", {"jobfleet_contract", "jobfleet_config"}),
    "cdk_app": (REPO / "cdk_app", {"stacks", "jobfleet_contract", "jobfleet_config"}),
    "jobfleet_tools": (REPO / "jobfleet_tools",
                       {"jobfleet_contract", "jobfleet_config", "worker", "redrive", "batch_submit"}),
}


def project_imports(path: Path) -> set[str]:
    """The project packages a module imports (top-level names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_upward(package):
    directory, allowed = PACKAGES[package]
    upward = {f"{path.relative_to(REPO)} imports {name}"
              for path in directory.rglob("*.py") for name in project_imports(path) - allowed - {package}}
    assert sorted(upward) == []


def test_the_walk_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from stacks.compute import ComputeStack\nimport jobfleet_contract.status\n")
    assert project_imports(module) == {"stacks", "jobfleet_contract"}


def test_contract_and_config_import_without_aws_cdk():
    code = ("import sys; sys.modules['aws_cdk'] = None; sys.modules['constructs'] = None\n"
            "import jobfleet_config.config, jobfleet_contract.attributes, jobfleet_contract.envelope\n"
            "import jobfleet_contract.environment, jobfleet_contract.status, jobfleet_contract.timestamps\n"
            "jobfleet_config.config.load_environment('dev')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
