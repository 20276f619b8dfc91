"""The `jobfleet.*` SQS message attributes: their names, how the worker encodes the dead-letter reason,
and how a dead-lettered message (a boto3 ReceiveMessage dict) is read back by the redrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from jobfleet_contract.envelope import RECORD_FAILURE, batch_failure_record, envelope_fields, original_body

PREFIX = "jobfleet."
# The dead-letter reason, written by the worker (and local mode's batch poller) on the DLQ copy.
ERROR_TYPE = "jobfleet.errorType"
ERROR_MESSAGE = "jobfleet.errorMessage"
ATTEMPT = "jobfleet.attempt"
WORKER_ID = "jobfleet.workerId"
FAILED_AT = "jobfleet.failedAt"
JOB_TYPE = "jobfleet.jobType"
# Maintained by the redrive: how many times the message has been sent back to its queue.
REDRIVE_COUNT = "jobfleet.redriveCount"

SQS_MAX_MESSAGE_ATTRIBUTES = 10
ERROR_MESSAGE_LIMIT = 1000
# Far above any sane MAX_REDRIVES; a larger count is not a count but a corrupted attribute.
MAX_REDRIVE_COUNT = 1_000_000

Message = Mapping[str, Any]


def string_value(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def number_value(value: int) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": str(value)}


# --- encoding (worker side) ----------------------------------------------------------------------------


def dead_letter_attributes(
    original: Mapping[str, dict[str, Any]],
    *,
    error_type: str,
    error_message: str,
    attempt: int,
    worker_id: str,
    failed_at: str,
    job_type: str,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Attributes for the DLQ copy: the reason (jobfleet.*) plus every original attribute SQS has room for.

    Returns (attributes, names dropped). SQS allows 10 attributes; the reason always wins, then other
    jobfleet.* attributes (e.g. jobfleet.redriveCount kept by the redrive), then the producer's.
    """
    if len(error_message) > ERROR_MESSAGE_LIMIT:
        error_message = error_message[: ERROR_MESSAGE_LIMIT - 3] + "..."
    reason = {
        ERROR_TYPE: error_type,
        ERROR_MESSAGE: error_message or "(no message)",
        ATTEMPT: str(attempt),
        WORKER_ID: worker_id,
        FAILED_AT: failed_at,
        JOB_TYPE: job_type,
    }
    attributes = {name: string_value(value) for name, value in reason.items()}
    kept = [name for name in original if name not in attributes]
    kept.sort(key=lambda name: not name.startswith(PREFIX))
    room = SQS_MAX_MESSAGE_ATTRIBUTES - len(attributes)
    for name in kept[:room]:
        attributes[name] = original[name]
    return attributes, kept[room:]


# --- decoding (redrive side) ---------------------------------------------------------------------------


class MalformedMessage(ValueError):
    """A message whose jobfleet.* attributes cannot be read: the redrive keeps it in the DLQ, counted
    and logged, and goes on with the others."""


def string_attribute(message: Message, name: str) -> str | None:
    attribute = message.get("MessageAttributes", {}).get(name)
    if attribute is None:
        return None
    if "StringValue" not in attribute:
        raise MalformedMessage(f"{name} has data type {attribute.get('DataType')!r}, not String or Number")
    return str(attribute["StringValue"])


def body_for_copy(message: Message) -> str:
    """What goes back to the tier queue: the original envelope, unwrapped from a batch failure record."""
    return original_body(message["Body"])


def job_type(message: Message) -> str | None:
    # Messages dead-lettered by SQS's redrive policy (worker killed mid-job) carry no worker attributes.
    attribute = string_attribute(message, JOB_TYPE)
    if attribute is not None:
        return attribute
    body_type = envelope_fields(message.get("Body", "")).get("type")
    return body_type if isinstance(body_type, str) else None


def job_id(message: Message) -> str | None:
    value = envelope_fields(message.get("Body", "")).get("jobId")
    return value if isinstance(value, str) and value else None


def error_type(message: Message) -> str | None:
    attribute = string_attribute(message, ERROR_TYPE)
    if attribute is not None:
        return attribute
    record = batch_failure_record(message.get("Body", ""))
    value = record[RECORD_FAILURE].get("errorType") if record is not None else None
    return value if isinstance(value, str) else None


def failed_at(message: Message) -> datetime | None:
    """When the job failed: the worker's jobfleet.failedAt, else the time SQS received the message."""
    stamp = string_attribute(message, FAILED_AT)
    if stamp is None:
        # Only then parse the body: a time filter calls this for every message the mover examines.
        record = batch_failure_record(message.get("Body", ""))
        if record is not None and isinstance(record[RECORD_FAILURE].get("failedAt"), str):
            stamp = record[RECORD_FAILURE]["failedAt"]
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


def from_lambda_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Lambda SQS event record (camelCase keys) as the ReceiveMessage dict the readers above take."""
    attributes = {name: {"DataType": value.get("dataType"),
                         **({"StringValue": value["stringValue"]} if "stringValue" in value else {}),
                         **({"BinaryValue": value["binaryValue"]} if "binaryValue" in value else {})}
                  for name, value in (record.get("messageAttributes") or {}).items()}
    return {"MessageId": record.get("messageId"), "Body": record.get("body", ""),
            "Attributes": dict(record.get("attributes") or {}), "MessageAttributes": attributes}


def attributes_for_copy(message: Message) -> dict[str, dict[str, Any]]:
    """The message's attributes for its redriven copy: all preserved, redrive count incremented.

    Received attributes carry reserved empty list fields that SendMessage rejects, so only the
    data type and the value are copied.
    """
    copied: dict[str, dict[str, Any]] = {}
    for name, attribute in message.get("MessageAttributes", {}).items():
        value_field = "BinaryValue" if "BinaryValue" in attribute else "StringValue"
        copied[name] = {"DataType": attribute["DataType"], value_field: attribute[value_field]}
    copied[REDRIVE_COUNT] = number_value(redrive_count(message) + 1)
    return copied
