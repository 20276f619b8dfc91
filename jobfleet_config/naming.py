"""The naming convention of every named resource: `<app>-<env>-<parts...>`."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Naming:
    """One environment's resource names (queues, alarms, functions, stacks); constructs that name
    several resources take this rather than the whole environment configuration."""

    app: str
    environment: str

    def resource_name(self, *parts: str) -> str:
        return "-".join((self.app, self.environment, *parts))
