"""What happens when a job ends, besides its status write: its result is stored and its terminal state
is published. The runtime and ``run-one`` call this; it owns neither storage nor transport itself."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from jobfleet_contract import environment as names
from worker.events import EventPublisher, event_publisher_from_env, job_state_change
from worker.results import ResultStore, result_store_from_env

log = logging.getLogger("worker.completion")


class Completion:
    def __init__(
        self,
        results: ResultStore | None = None,
        events: EventPublisher | None = None,
        tier: str = "default",
    ) -> None:
        self.results = results
        self.events = events
        self.tier = tier

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Completion:
        tier = env.get(names.TIER) or "default"
        return cls(result_store_from_env(env), event_publisher_from_env(env), tier)

    def store_result(self, job_id: str, text: str | None) -> dict[str, Any] | None:
        """Store a succeeded job's result (JSON text); errors propagate: the result is part of the job."""
        if text is None:
            return None
        if self.results is None:
            log.debug("result not stored: RESULTS_BUCKET is not set", extra={"jobId": job_id})
            return None
        return self.results.put(job_id, text)

    def finished(
        self,
        job_id: str,
        job_type: str,
        state: str,
        attempt: int,
        *,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        if self.events is None:
            return
        self.events.publish(
            job_state_change(
                job_id=job_id,
                job_type=job_type,
                tier=self.tier,
                state=state,
                attempt=attempt,
                environment=self.events.environment,
                error=error,
                result=result,
            )
        )
