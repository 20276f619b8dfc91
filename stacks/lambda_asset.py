"""Python Lambda assets: packages copied side by side by a local bundler (no Docker).

A function's asset holds its own package and `jobfleet_contract` (the code the worker ships too),
each as its `*.py` modules only (no tests, caches or requirements files), so `from <package>...`
and `from jobfleet_contract... import ...` resolve in /var/task.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[1]
LAMBDA_DIR = REPO / "lambda"
CONTRACT_DIR = REPO / "jobfleet_contract"


@jsii.implements(cdk.ILocalBundling)
class _PackageCopy:
    """Copies the asset's packages' modules into the bundle."""

    def __init__(self, packages: Mapping[str, Path]) -> None:
        self.packages = dict(packages)

    def try_bundle(self, output_dir: str, options: Any) -> bool:
        for name, source in self.packages.items():
            target = Path(output_dir) / name
            target.mkdir()
            for module in sorted(source.glob("*.py")):
                shutil.copyfile(module, target / module.name)
        return True


def asset_packages(function_package: str) -> dict[str, Path]:
    """package name in the asset -> its source directory: the function's own and the contract."""
    return {function_package: LAMBDA_DIR / function_package, "jobfleet_contract": CONTRACT_DIR}


def asset_code(packages: Mapping[str, Path]) -> lambda_.Code:
    """A function's code. Hashed by its output, so it changes exactly when a copied module does."""
    return lambda_.Code.from_asset(
        str(LAMBDA_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Required by the API, never pulled: the local bundler always succeeds.
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            # Names the packages in the bundling options: CDK caches bundles per synth by source
            # path and options (not by the local bundler), so without it every function's asset
            # from lambda/ would be the first one bundled. Not part of the asset's hash.
            environment={"JOBFLEET_ASSET_PACKAGES": ",".join(sorted(packages))},
            # jsii types ILocalBundling.try_bundle with the options struct spread into keywords;
            # the kernel calls implementations with the struct as one positional argument.
            local=cast(cdk.ILocalBundling, _PackageCopy(packages)),
        ),
    )
