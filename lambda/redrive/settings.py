"""The function's configuration, read from the environment the redrive stack builds
(jobfleet_contract.environment.redrive_environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jobfleet_contract import environment as names
from jobfleet_contract.environment import ConfigError, parse_max_redrives
from jobfleet_contract.status import DEFAULT_TTL_DAYS
from redrive.request import QueuePair, parse_tier_queues


@dataclass(frozen=True)
class RedriveSettings:
    tier_queues: dict[str, QueuePair]
    max_redrives: int | None  # None: no quarantine
    status_table: str | None
    status_ttl_days: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedriveSettings:
        raw_queues = env.get(names.TIER_QUEUES, "").strip()
        if not raw_queues:
            raise ConfigError(f"required environment variable not set: {names.TIER_QUEUES}")
        try:
            tier_queues = parse_tier_queues(raw_queues)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        status_table, status_ttl_days = names.status_table_settings(env, DEFAULT_TTL_DAYS)
        return cls(tier_queues=tier_queues, max_redrives=parse_max_redrives(env),
                   status_table=status_table, status_ttl_days=status_ttl_days)
