"""The "Job State Change" event: published to EventBridge on every terminal state of a job.

Terminal states: ``succeeded``, ``dead-lettered`` (the ``run`` worker), and ``succeeded`` / ``failed``
for ``run-one`` (a failed Batch job is final: the failure route moves it to the tier's DLQ). Teams
subscribe with a rule on ``source = "jobfleet"`` and ``detail-type = "Job State Change"`` instead of
polling ``GET /jobs/{id}``. Schema: docs/events.md.

Publishing is advisory, like status writes: an EventBridge error is logged and never fails the job.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from jobfleet_contract import environment as names
from jobfleet_contract.status import DEAD_LETTERED, FAILED, SUCCEEDED
from jobfleet_contract.timestamps import iso_now

log = logging.getLogger("worker.events")

EVENT_SOURCE = "jobfleet"
DETAIL_TYPE = "Job State Change"
SCHEMA_VERSION = "1"
TERMINAL_STATES = (SUCCEEDED, FAILED, DEAD_LETTERED)


def job_state_change(
    *,
    job_id: str,
    job_type: str,
    tier: str,
    state: str,
    attempt: int,
    environment: str,
    error: str | None = None,
    result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event's ``detail`` (docs/events.md)."""
    if state not in TERMINAL_STATES:
        raise ValueError(f"{state!r} is not a terminal state: {', '.join(TERMINAL_STATES)}")
    return {
        "version": SCHEMA_VERSION,
        "environment": environment,
        "jobId": job_id,
        "type": job_type,
        "tier": tier,
        "state": state,
        "attempt": attempt,
        "finishedAt": iso_now(),
        "error": error,
        "result": dict(result) if result else None,
    }


class EventPublisher:
    def __init__(self, client, bus_name: str, environment: str) -> None:
        self._client = client
        self._bus = bus_name
        self.environment = environment

    def publish(self, detail: Mapping[str, Any]) -> bool:
        """One PutEvents entry; False (logged) when EventBridge refused or could not be reached."""
        try:
            response = self._client.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "EventBusName": self._bus,
                        "Resources": [],
                    }
                ]
            )
        except Exception as exc:  # advisory: an EventBridge outage must not fail or block jobs
            log.warning("job event not published", extra={"jobId": detail.get("jobId"), "error": str(exc)})
            return False
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            log.warning(
                "job event refused",
                extra={"jobId": detail.get("jobId"), "error": entry.get("ErrorMessage", "")},
            )
            return False
        return True


def event_publisher_from_env(env: Mapping[str, str] = os.environ) -> EventPublisher | None:
    _, bus, environment = names.completion_settings(env)
    if bus is None:
        return None
    import boto3

    return EventPublisher(boto3.client("events"), bus, environment)
