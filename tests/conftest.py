"""Shared fixtures: a real moto server on 127.0.0.1 (ThreadedMotoServer), never in-process mocks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from jobfleet_tools.local.processes import free_port
from tests.support.status_table import new_status_table

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server running as a real HTTP server for the whole session.

    Also sets fake credentials and the region in os.environ so that subprocesses started by
    tests (workers receiving real signals) reach the same server.
    """
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def sqs(moto_endpoint: str):
    """A boto3 SQS client pointed at the moto server."""
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture()
def jobs_table(moto_endpoint: str) -> Iterator[Any]:
    """A fresh job-status table on the moto server (boto3 Table), defined as local mode's, deleted after."""
    table = new_status_table(moto_endpoint)
    yield table
    table.delete()


# --- CDK synthesis: once per test session (a synth starts Node through jsii and costs seconds) ---

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    """All environments synthesized once, with cdk.json's feature flags and cdk-nag on.

    Returns (assembly directory, {env name: JobFleetStage}). cdk-nag findings fail the synth and
    so every test that uses this fixture.
    """
    import aws_cdk as cdk

    from cdk_app.app import add_environments, feature_flags, select_environments

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(context=feature_flags(), outdir=str(outdir))
    stages = add_environments(app, select_environments(None))
    app.synth()
    return outdir, {stage.config.name: stage for stage in stages}


@pytest.fixture(scope="session")
def stages(synthesized):
    return synthesized[1]


TEAM_DEV_TOML = Path(__file__).parent / "support" / "team_dev.toml"


def team_config_dir(directory: Path) -> Path:
    """An environment directory: the shipped defaults.toml and the example team's dev.toml."""
    from jobfleet_config.config import ENVIRONMENTS_DIR

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ENVIRONMENTS_DIR / "defaults.toml", directory / "defaults.toml")
    shutil.copy(TEAM_DEV_TOML, directory / "dev.toml")
    return directory


@pytest.fixture(scope="session")
def team_synthesized(tmp_path_factory):
    """The "Done when" scenario, synthesized once: a dev environment naming the example team package,
    an extra variable, a Secrets Manager secret, an S3 read permission and a prebuilt image digest.

    Returns (assembly directory, JobFleetStage); cdk-nag runs on it as on the shipped environments.
    """
    import aws_cdk as cdk

    from cdk_app.app import add_environments, feature_flags, select_environments

    directory = team_config_dir(tmp_path_factory.mktemp("team-environments"))
    outdir = tmp_path_factory.mktemp("team-cdk.out")
    app = cdk.App(context=feature_flags(), outdir=str(outdir))
    (stage,) = add_environments(app, select_environments("dev", directory))
    app.synth()
    return outdir, stage


@pytest.fixture(scope="session")
def assemblies(synthesized, team_synthesized) -> list[Path]:
    """Every synthesized assembly directory the scanners (cfn-lint, checkov, IAM) go over."""
    return [Path(synthesized[0]), Path(team_synthesized[0])]
