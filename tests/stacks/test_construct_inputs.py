"""Constructs take the values they use (issue 12, item 4): a construct's signature shows its inputs.

Only the stacks receive the whole EnvironmentConfig; a construct or helper under stacks/constructs/
(and the log-group helper) takes a name, a config section, a removal policy or a small frozen value
built from the config (`Naming`, `LogSettings`, `JobCompletion`, `ResultsBucketName`), whose `of`
factory is the one place allowed to read the whole config.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONSTRUCT_MODULES = [*sorted((REPO / "stacks" / "constructs").glob("*.py")), REPO / "stacks" / "logs.py"]
FACTORY = "of"


def whole_config_parameters(path: Path) -> list[str]:
    """`module:function(parameter)` for every parameter annotated EnvironmentConfig, factories aside."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name == FACTORY:
            continue
        arguments = node.args
        for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
            if argument.annotation is not None and "EnvironmentConfig" in ast.unparse(argument.annotation):
                found.append(f"{path.name}:{node.name}({argument.arg})")
    return found


def test_no_construct_takes_the_whole_environment_config():
    assert [p for path in CONSTRUCT_MODULES for p in whole_config_parameters(path)] == []


def test_the_walk_sees_a_construct_taking_the_config(tmp_path):
    module = tmp_path / "construct.py"
    module.write_text("class C:\n"
                      "    def __init__(self, scope, construct_id, *, config: EnvironmentConfig): ...\n"
                      "    @classmethod\n"
                      "    def of(cls, config: EnvironmentConfig) -> C: ...\n"
                      "def helper(scope, config: 'EnvironmentConfig') -> None: ...\n")
    found = whole_config_parameters(module)
    assert sorted(found) == ["construct.py:__init__(config)", "construct.py:helper(config)"]
