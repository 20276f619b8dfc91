"""The one timestamp format on the wire and in the status table: UTC ISO-8601, milliseconds, "Z"."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_now() -> str:
    return iso_timestamp(datetime.now(UTC))


def iso_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
