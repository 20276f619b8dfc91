"""Which dead-lettered messages an operator wants redriven: a pure predicate over one message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobfleet_contract.attributes import Message, error_type, failed_at, job_type


@dataclass(frozen=True)
class MessageFilter:
    """All given criteria must hold; an empty filter matches every message."""

    types: frozenset[str] = frozenset()
    error_types: frozenset[str] = frozenset()
    older_than_seconds: float | None = None
    newer_than_seconds: float | None = None

    @property
    def is_empty(self) -> bool:
        return (
            not self.types
            and not self.error_types
            and self.older_than_seconds is None
            and self.newer_than_seconds is None
        )

    def matches(self, message: Message, now: datetime) -> bool:
        if self.types and job_type(message) not in self.types:
            return False
        if self.error_types and error_type(message) not in self.error_types:
            return False
        if self.older_than_seconds is None and self.newer_than_seconds is None:
            return True
        failure_time = failed_at(message)
        if failure_time is None:
            return False
        age_seconds = (now - failure_time).total_seconds()
        if self.older_than_seconds is not None and age_seconds < self.older_than_seconds:
            return False
        return self.newer_than_seconds is None or age_seconds <= self.newer_than_seconds
