"""Every container environment the stacks synthesize is what its runtime reads.

For each environment: every ECS container (worker tiers, API), every Batch job definition, the
redrive function and the batch feed function. Their variables (CloudFormation tokens replaced by
plausible values) go through the runtime's own parser, recording which names it reads: every
variable set must be read (by the parser, or by a library it uses:
jobfleet_contract.environment.READ_BY_LIBRARIES), and the parser must accept the set (a missing
required variable is a ConfigError naming it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from redrive.settings import RedriveSettings
from worker.__main__ import api_bind_address
from worker.api import ApiSettings
from worker.config import DEFAULT_HANDLERS, WorkerConfig
from worker.run_one import run_one
from worker.wake import ServiceWaker

from jobfleet_contract.envelope import Envelope
from jobfleet_contract.environment import (
    READ_BY_LIBRARIES,
    BatchFeedSettings,
    ConfigError,
    completion_settings,
    parse_handlers,
)
from jobfleet_contract.status import status_store_from_env

ENVS = ["dev", "staging", "prod"]
PLAUSIBLE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobfleet-resolved"


class RecordingEnv(dict):
    """An environment that remembers every name a parser looked up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def _parse_run_one(env: RecordingEnv) -> None:
    # What `python -m worker run-one` reads: its handlers, the status table, results and events; then
    # an unregistered type: run-one reads its settings and refuses the job before running anything.
    parse_handlers(env, DEFAULT_HANDLERS)
    completion_settings(env)
    envelope = Envelope("env-contract", "not.registered", {}, "2026-01-01T00:00:00Z").to_json()
    status_store_from_env(env, lambda: boto3.resource("dynamodb", region_name="us-east-1"))  # no call is made
    assert run_one(envelope, None, env=env) == 2


PARSERS: dict[str, Callable[[RecordingEnv], Any]] = {
    # `python -m worker run`: its settings, and where results and job events go.
    "worker": lambda env: (WorkerConfig.from_env(env), completion_settings(env)),
    "api": lambda env: (ApiSettings.from_env(env), api_bind_address(env),
                        ServiceWaker.from_env(env, ecs_client=boto3.client("ecs", region_name="us-east-1"))),
    "run-one": _parse_run_one,
    "redrive": RedriveSettings.from_env,
    "batch-feed": BatchFeedSettings.from_env,
}


def contract_problems(runtime: str, variables: dict[str, str]) -> list[str]:
    """Why ``variables`` are not what ``runtime`` reads; [] when they are."""
    env = RecordingEnv(variables)
    try:
        PARSERS[runtime](env)
    except ConfigError as error:
        return [f"{runtime} refuses its environment: {error}"]
    return [f"{runtime} never reads {name}" for name in sorted(set(variables) - env.read - READ_BY_LIBRARIES)]


def _resolve(value: Any) -> str:
    """A template value with its CloudFormation tokens replaced by plausible values."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_resolve(part) for part in parts)
    if isinstance(value, dict) and value.get("Ref") == "AWS::Region":
        return "us-east-1"
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
        return PLAUSIBLE_URL
    raise AssertionError(f"unexpected template value {value!r}")


def _variables(pairs: list[dict[str, Any]]) -> dict[str, str]:
    return {pair["Name"]: _resolve(pair["Value"]) for pair in pairs}


# A function's package (its handler's first part) -> its runtime in PARSERS.
LAMBDA_RUNTIMES = {"redrive": "redrive", "batch_submit": "batch-feed"}


def synthesized_environments(outdir: Path, env: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(runtime, where, variables) of every container and function of one environment."""
    for path in sorted((outdir / f"assembly-{env}").glob("*.template.json")):
        resources = json.loads(path.read_text()).get("Resources", {})
        for logical_id, resource in resources.items():
            properties = resource.get("Properties", {})
            where = f"{path.name}:{logical_id}"
            if resource["Type"] == "AWS::ECS::TaskDefinition":
                for container in properties["ContainerDefinitions"]:
                    command = container.get("Command", [])
                    runtime = "worker" if command[-1:] == ["run"] else "api"
                    variables = _variables(container.get("Environment", []))
                    yield runtime, f"{where}/{container['Name']}", variables
            elif resource["Type"] == "AWS::Batch::JobDefinition":
                containers = ([properties["ContainerProperties"]] if "ContainerProperties" in properties
                              else [c for task in properties["EcsProperties"]["TaskProperties"]
                                    for c in task["Containers"]])
                for container in containers:
                    yield "run-one", where, _variables(container.get("Environment", []))
            elif resource["Type"] == "AWS::Lambda::Function" and (
                    runtime := LAMBDA_RUNTIMES.get(properties.get("Handler", "").split(".")[0])):
                variables = properties["Environment"]["Variables"]
                yield runtime, where, {name: _resolve(value) for name, value in variables.items()}


@pytest.fixture(scope="module")
def environments(synthesized) -> dict[str, list[tuple[str, str, dict[str, str]]]]:
    outdir, _ = synthesized
    return {env: list(synthesized_environments(outdir, env)) for env in ENVS}


@pytest.mark.parametrize("env", ENVS)
def test_every_synthesized_environment_is_what_its_runtime_reads(environments, stages, env):
    found = environments[env]
    runtimes = {runtime for runtime, _, _ in found}
    assert runtimes >= {"worker", "api", "redrive"}
    if stages[env].config.batch_tiers:
        assert {"run-one", "batch-feed"} <= runtimes
    problems = [f"{where}: {problem}" for runtime, where, variables in found
                for problem in contract_problems(runtime, variables)]
    assert problems == []


def _first(environments, runtime: str) -> dict[str, str]:
    return next(variables for found, _, variables in environments["prod"] if found == runtime)


@pytest.mark.parametrize("runtime", ["worker", "api", "run-one", "redrive", "batch-feed"])
def test_fails_when_a_stack_sets_a_variable_the_runtime_does_not_read(environments, runtime):
    variables = {**_first(environments, runtime), "QUEUE_URLS": PLAUSIBLE_URL}  # a plausible typo
    assert contract_problems(runtime, variables) == [f"{runtime} never reads QUEUE_URLS"]


@pytest.mark.parametrize(("runtime", "required"), [("worker", "QUEUE_URL"), ("worker", "DLQ_URL"),
                                                   ("api", "TIER_QUEUES"), ("api", "JOB_TYPES"),
                                                   ("redrive", "TIER_QUEUES"),
                                                   ("batch-feed", "JOB_QUEUE"),
                                                   ("batch-feed", "JOB_DEFINITION"),
                                                   ("batch-feed", "JOB_NAME")])
def test_fails_when_a_stack_drops_a_required_variable(environments, runtime, required):
    variables = dict(_first(environments, runtime))
    del variables[required]
    (problem,) = contract_problems(runtime, variables)
    assert problem.startswith(f"{runtime} refuses its environment") and required in problem
