"""Reading JobFleet dead-letter messages: the worker's failure attributes and the job envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# Written by the worker when it dead-letters a message (see worker runtime contract).
JOB_TYPE = "jobfleet.jobType"
ERROR_TYPE = "jobfleet.errorType"
FAILED_AT = "jobfleet.failedAt"
# Maintained by this Lambda: how many times the message has been sent back to its queue.
REDRIVE_COUNT = "jobfleet.redriveCount"

# Far above any sane MAX_REDRIVES; a larger count is not a count but a corrupted attribute.
MAX_REDRIVE_COUNT = 1_000_000

Message = Mapping[str, Any]


class MalformedMessage(ValueError):
    """A message whose JobFleet attributes cannot be read: it stays in the DLQ, counted and logged."""


def string_attribute(message: Message, name: str) -> str | None:
    attribute = message.get("MessageAttributes", {}).get(name)
    if attribute is None:
        return None
    if "StringValue" not in attribute:
        raise MalformedMessage(f"{name} has data type {attribute.get('DataType')!r}, not String or Number")
    return attribute["StringValue"]


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def batch_failure(message: Message) -> dict[str, Any] | None:
    """The failure record of a batch-tier DLQ message, else None.

    EventBridge cannot set message attributes, so the Batch failure rule writes
    {"envelope": <original body as a string>, "failure": {"errorType", "reason", "failedAt", ...}}.
    """
    body = _json_object(message.get("Body", ""))
    if isinstance(body.get("envelope"), str) and isinstance(body.get("failure"), dict):
        return body
    return None


def body_for_copy(message: Message) -> str:
    """What goes back to the tier queue: the original envelope, unwrapped from a batch failure record."""
    record = batch_failure(message)
    return record["envelope"] if record is not None else message["Body"]


def envelope(message: Message) -> dict[str, Any]:
    """The job envelope in the body; {} when the body is not a JSON object (malformed jobs get here too)."""
    return _json_object(body_for_copy(message))


def job_type(message: Message) -> str | None:
    # Messages dead-lettered by SQS's redrive policy (worker killed mid-job) carry no worker attributes.
    attribute = string_attribute(message, JOB_TYPE)
    if attribute is not None:
        return attribute
    body_type = envelope(message).get("type")
    return body_type if isinstance(body_type, str) else None


def job_id(message: Message) -> str | None:
    value = envelope(message).get("jobId")
    return value if isinstance(value, str) and value else None


def error_type(message: Message) -> str | None:
    attribute = string_attribute(message, ERROR_TYPE)
    if attribute is not None:
        return attribute
    record = batch_failure(message)
    value = record["failure"].get("errorType") if record is not None else None
    return value if isinstance(value, str) else None


def failed_at(message: Message) -> datetime | None:
    """When the job failed: the worker's jobfleet.failedAt, else the time SQS received the message."""
    stamp = string_attribute(message, FAILED_AT)
    if stamp is None:
        # Only then parse the body: a time filter calls this for every message the mover examines.
        record = batch_failure(message)
        if record is not None and isinstance(record["failure"].get("failedAt"), str):
            stamp = record["failure"]["failedAt"]
    if stamp is not None:
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError:
            parsed = None
        if parsed is not None:
            parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            try:
                # Offsets near the ends of the calendar overflow only once compared with "now".
                return parsed.astimezone(UTC)
            except OverflowError:
                raise MalformedMessage(f"{FAILED_AT} {stamp!r} is out of range") from None
    sent_millis = message.get("Attributes", {}).get("SentTimestamp")
    if sent_millis is None:
        return None
    return datetime.fromtimestamp(int(sent_millis) / 1000, tz=UTC)


def redrive_count(message: Message) -> int:
    """Times already redriven (0 when never); MalformedMessage when the attribute is not a count.

    Treating such a value as 0 would redrive a message past MAX_REDRIVES forever; treating
    "Infinity" or "1e999999" as a number would overflow or take the run down.
    """
    value = string_attribute(message, REDRIVE_COUNT)
    if value is None:
        return 0
    try:
        count = Decimal(value)
    except InvalidOperation:
        count = None
    if count is None or not count.is_finite() or count != count.to_integral_value() \
            or not 0 <= count <= MAX_REDRIVE_COUNT:
        raise MalformedMessage(f"{REDRIVE_COUNT} {value[:40]!r} is not a whole number from 0 to"
                               f" {MAX_REDRIVE_COUNT}")
    return int(count)


def attributes_for_copy(message: Message) -> dict[str, dict[str, Any]]:
    """The message's attributes for its redriven copy: all preserved, redrive count incremented.

    Received attributes carry reserved empty list fields that SendMessage rejects, so only the
    data type and the value are copied.
    """
    copied: dict[str, dict[str, Any]] = {}
    for name, attribute in message.get("MessageAttributes", {}).items():
        value_field = "BinaryValue" if "BinaryValue" in attribute else "StringValue"
        copied[name] = {"DataType": attribute["DataType"], value_field: attribute[value_field]}
    copied[REDRIVE_COUNT] = {"DataType": "Number", "StringValue": str(redrive_count(message) + 1)}
    return copied
