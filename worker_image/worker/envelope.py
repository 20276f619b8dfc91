"""The JSON envelope every producer sends: {"jobId", "type", "payload", "submittedAt"}."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.errors import InvalidEnvelope


@dataclass(frozen=True)
class Envelope:
    job_id: str
    job_type: str
    payload: dict[str, Any]
    submitted_at: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "jobId": self.job_id,
                "type": self.job_type,
                "payload": self.payload,
                "submittedAt": self.submitted_at,
            }
        )


def parse_envelope(body: str) -> Envelope:
    """Validate a message body; any defect is permanent, so it raises InvalidEnvelope naming the field."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise InvalidEnvelope(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidEnvelope("body is nested too deeply to parse") from None
    if not isinstance(data, dict):
        raise InvalidEnvelope(f"body must be a JSON object, got {type(data).__name__}")
    if isinstance(data.get("envelope"), str) and isinstance(data.get("failure"), dict):
        # A batch-tier DLQ record ({"envelope": <original body>, "failure": {...}}, written by the
        # Batch failure rule) moved back as-is, e.g. by SQS's native move task: run the original.
        return parse_envelope(data["envelope"])
    for field in ("jobId", "type"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise InvalidEnvelope(f"{field} must be a non-empty string")
    if not isinstance(data.get("payload"), dict):
        raise InvalidEnvelope("payload must be a JSON object")
    submitted_at = data.get("submittedAt")
    try:
        datetime.fromisoformat(submitted_at)
    except (TypeError, ValueError):
        raise InvalidEnvelope(f"submittedAt must be an ISO-8601 timestamp, got {submitted_at!r}") from None
    return Envelope(data["jobId"], data["type"], data["payload"], submitted_at)
