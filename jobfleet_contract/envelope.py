"""The JSON envelope every producer sends: {"jobId", "type", "payload", "submittedAt"}, and the two
records that wrap it:

- the batch failure record the Batch tier's failure rule wraps it in on the way to the DLQ:
  {"envelope": <original body as a string>, "failure": {"errorType", "reason", "failedAt", ...}}
  (EventBridge cannot set message attributes, so the reason travels in the body);
- the deferral record a worker re-sends a job as while its type's circuit breaker is open:
  {"jobfleet.deferred": {"priorAttempts", "deferrals"}, "body": <original body as a string>}
  (a message may already carry all 10 attributes SQS allows, so the bookkeeping travels in the body).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobfleet_contract.errors import InvalidEnvelope

# Fields of the batch failure record (stacks/constructs/batch_failure_route.py writes them).
RECORD_ENVELOPE = "envelope"
RECORD_FAILURE = "failure"
# Fields of the deferral record (the worker writes and reads it).
RECORD_DEFERRED = "jobfleet.deferred"
RECORD_BODY = "body"
SQS_MAX_BODY_BYTES = 262_144


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


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Deferral:
    body: str  # the producer's original body
    prior_attempts: int = 0
    deferrals: int = 0


def deferred_body(deferral: Deferral) -> str | None:
    """Body of the message a breaker deferral re-sends, or None when it would exceed SQS's body limit."""
    body = json.dumps(
        {
            RECORD_DEFERRED: {"priorAttempts": deferral.prior_attempts, "deferrals": deferral.deferrals},
            RECORD_BODY: deferral.body,
        }
    )
    return body if len(body.encode()) <= SQS_MAX_BODY_BYTES else None


def _as_deferral(data: Any) -> Deferral | None:
    if not isinstance(data, dict) or not isinstance(data.get(RECORD_DEFERRED), dict):
        return None
    record, original = data[RECORD_DEFERRED], data.get(RECORD_BODY)
    try:
        prior, deferrals = int(record["priorAttempts"]), int(record["deferrals"])
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(original, str):
        return None
    return Deferral(original, max(0, prior), max(0, deferrals))


def read_deferral(body: str) -> Deferral:
    """The original body and bookkeeping of a received message; a plain body is a first pass."""
    if not body.startswith('{"' + RECORD_DEFERRED + '"'):  # cheap: most bodies are not deferrals
        return Deferral(body)
    return _as_deferral(_json_object(body)) or Deferral(body)


def _as_record(data: Any) -> dict[str, Any] | None:
    if (isinstance(data, dict) and isinstance(data.get(RECORD_ENVELOPE), str)
            and isinstance(data.get(RECORD_FAILURE), dict)):
        return data
    return None


def batch_failure_record(body: Any) -> dict[str, Any] | None:
    """The batch failure record a body holds, else None."""
    return _as_record(_json_object(body))


def original_body(body: str) -> str:
    """The producer's body: unwrapped from a batch failure or deferral record, else the body itself."""
    data = _json_object(body)
    record, deferral = _as_record(data), _as_deferral(data)
    if record is not None:
        return str(record[RECORD_ENVELOPE])
    return deferral.body if deferral is not None else body


def envelope_fields(body: Any) -> dict[str, Any]:
    """The (unwrapped) envelope as a JSON object, unvalidated; {} when it is not one (malformed jobs
    reach DLQs too, and their readers must not fail on them)."""
    data = _json_object(body)
    record, deferral = _as_record(data), _as_deferral(data)
    if record is not None:
        return _json_object(record[RECORD_ENVELOPE])
    return _json_object(deferral.body) if deferral is not None else data


def parse_envelope(body: str) -> Envelope:
    """Validate a message body; any defect is permanent, so it raises InvalidEnvelope naming the field.

    A batch failure record moved back as-is (e.g. by SQS's native move task) runs the original job.
    """
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise InvalidEnvelope(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidEnvelope("body is nested too deeply to parse") from None
    if not isinstance(data, dict):
        raise InvalidEnvelope(f"body must be a JSON object, got {type(data).__name__}")
    record = _as_record(data)
    if record is not None:
        return parse_envelope(record[RECORD_ENVELOPE])
    deferral = _as_deferral(data)
    if deferral is not None:
        return parse_envelope(deferral.body)
    for field in ("jobId", "type"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise InvalidEnvelope(f"{field} must be a non-empty string")
    if not isinstance(data.get("payload"), dict):
        raise InvalidEnvelope("payload must be a JSON object")
    submitted_at = data.get("submittedAt")
    if not isinstance(submitted_at, str) or not _is_iso_timestamp(submitted_at):
        raise InvalidEnvelope(f"submittedAt must be an ISO-8601 timestamp, got {submitted_at!r}")
    return Envelope(data["jobId"], data["type"], data["payload"], submitted_at)


def _is_iso_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
