"""Image platforms an environment runs: `python -m jobfleet_tools platforms dev` prints e.g.
`linux/amd64,linux/arm64`.

Read by the worker-image workflow, so Buildx builds exactly the architectures the tiers and the API are
configured for (`architecture` per tier, `api.architecture`). Bad input: one line, exit 2.
"""

from __future__ import annotations

import sys

from jobfleet_config.config import ConfigError, EnvironmentConfig, load_environment

PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}


def image_platforms(config: EnvironmentConfig) -> list[str]:
    architectures = {tier.architecture for tier in config.tiers} | {config.api.architecture}
    return [PLATFORMS[a] for a in sorted(architectures, key=list(PLATFORMS).index)]


def main(argv: list[str]) -> int:
    args = argv
    if len(args) != 1:
        print("usage: python -m jobfleet_tools platforms ENV", file=sys.stderr)
        return 2
    try:
        config = load_environment(args[0])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(",".join(image_platforms(config)))
    return 0

