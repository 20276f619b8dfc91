"""CDK entry point (cdk.json: `.venv/bin/python -m cdk_app.app`).

The only place that reads context and environment variables. With no `-c env=NAME`, every
environment in cdk_app/environments/ is synthesized, each as its own Stage.
A bad configuration or a cdk-nag finding ends synth with one clear line and exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# jsii prints a multi-line banner for Node 20; the pinned toolchain is known to work with it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
import cdk_nag
from aws_cdk import region_info

from cdk_app.stage import JobFleetStage
from jobfleet_config.config import (
    ENVIRONMENTS_DIR,
    ConfigError,
    EnvironmentConfig,
    load_all,
    load_environment,
    with_prebuilt_image,
)

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def select_environments(requested: str | None, directory: Path = ENVIRONMENTS_DIR) -> list[EnvironmentConfig]:
    configs = [load_environment(requested, directory)] if requested else load_all(directory)
    for config in configs:
        _check_region(config, directory)
    return configs


def _check_region(config: EnvironmentConfig, directory: Path) -> None:
    """A pinned region must be one aws-cdk-lib knows: the ALB log-delivery account (and whether the
    region has one) is resolved from its region table at synth; an unknown region would only fail
    at deploy. (Env-agnostic stages carry the table as a mapping and need no check.)"""
    region = config.app.region
    if region and region not in {r.name for r in region_info.RegionInfo.regions}:
        raise ConfigError(str(directory / f"{config.name}.toml"), "app.region", region,
                          f"a region aws-cdk-lib {cdk_version()} knows (its ALB log-delivery "
                          "account is resolved per region at synth); upgrade aws-cdk-lib for a "
                          "newer region, or leave app.region empty (env-agnostic)")


def cdk_version() -> str:
    from importlib.metadata import version

    return version("aws-cdk-lib")


def add_environments(app: cdk.App, configs: list[EnvironmentConfig]) -> list[JobFleetStage]:
    """One Stage per environment, with cdk-nag's AwsSolutions pack on all of them."""
    cdk.Validations.of(app).add_plugins(cdk_nag.AwsSolutionsChecks())
    return [JobFleetStage(app, config) for config in configs]


def feature_flags() -> dict:
    """cdk.json's context, for apps built outside the CLI (tests, benchmarks)."""
    return json.loads(CDK_JSON.read_text())["context"]


def main() -> int:
    app = cdk.App()
    try:
        # JOBFLEET_CONFIG_DIR points synth at another set of environment files (tests, forks).
        directory = Path(os.environ.get("JOBFLEET_CONFIG_DIR", ENVIRONMENTS_DIR))
        configs = select_environments(app.node.try_get_context("env"), directory)
        # -c image=<registry>/<repo>@sha256:<digest>: the worker image CI built (no Docker here).
        image = app.node.try_get_context("image")
        if image:
            configs = [with_prebuilt_image(config, str(image)) for config in configs]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for config in configs:
        for warning in config.warnings:
            print(warning, file=sys.stderr)
    add_environments(app, configs)
    try:
        app.synth()
    except RuntimeError as exc:
        if "ValidationFailed" in str(exc):
            print("error: cdk-nag (AwsSolutions) reported findings above; fix them or acknowledge "
                  "each with stacks.nag.acknowledge and a specific reason", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
