"""Turns a redrive event into a validated request; every rejection is an InvalidEvent with a reason.

The event's shape is declared once as pydantic models (strict: no coercion, no unknown keys, finite
numbers only); `parse_event` then resolves the queues, which needs the function's configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from redrive.filters import MessageFilter

# StartMessageMoveTask's upper bound for MaxNumberOfMessagesPerSecond.
NATIVE_MAX_RATE = 500
MODES = ("auto", "native", "selective")
FIFO_SUFFIX = ".fifo"


class InvalidEvent(ValueError):
    """The event cannot be acted on; the message says why."""


class _EventModel(BaseModel):
    # Unknown keys are refused: a typo such as "dryrun" must not turn a preview into a real move.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, alias_generator=to_camel,
                              allow_inf_nan=False)


Name = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(ge=0)]


class FilterEvent(_EventModel):
    types: list[Name] | None = Field(default=None, min_length=1)
    error_types: list[Name] | None = Field(default=None, min_length=1)
    older_than_seconds: Seconds | None = None
    newer_than_seconds: Seconds | None = None

    @model_validator(mode="after")
    def _window_not_empty(self) -> FilterEvent:
        older, newer = self.older_than_seconds, self.newer_than_seconds
        if older is not None and newer is not None and older >= newer:
            raise ValueError(f"empty time window: olderThanSeconds ({older:g}) must be less than"
                             f" newerThanSeconds ({newer:g})")
        return self


class RedriveEvent(_EventModel):
    tier: Name | None = None
    dlq_url: Name | None = None
    target_url: Name | None = None
    dry_run: bool = False
    max_messages: Annotated[int, Field(ge=1)] | None = None
    rate_per_second: Annotated[float, Field(gt=0)] | None = None
    filter: FilterEvent | None = None
    mode: Literal["auto", "native", "selective"] = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> RedriveEvent:
        if self.tier is not None and (self.dlq_url is not None or self.target_url is not None):
            raise ValueError("give either tier or dlqUrl/targetUrl, not both")
        if self.tier is None and self.dlq_url is None:
            raise ValueError("event needs tier, or dlqUrl and targetUrl")
        if self.dlq_url is not None and self.target_url is None:
            raise ValueError("dlqUrl needs targetUrl (the queue to send messages back to)")
        if self.mode == "native":
            if self.filter is not None or self.dry_run or self.max_messages is not None:
                raise ValueError(
                    "mode 'native' cannot filter, dry-run or stop at maxMessages; use 'selective'")
            if self.rate_per_second is not None and self.rate_per_second > NATIVE_MAX_RATE:
                raise ValueError(f"ratePerSecond must be <= {NATIVE_MAX_RATE} in native mode")
        return self


class StatusEvent(_EventModel):
    """List the DLQ's message move tasks."""

    action: Literal["status"]
    tier: Name | None = None
    dlq_url: Name | None = None

    @model_validator(mode="after")
    def _one_queue(self) -> StatusEvent:
        if (self.tier is None) == (self.dlq_url is None):
            raise ValueError("status needs tier or dlqUrl (one of them)")
        return self


@dataclass(frozen=True)
class QueuePair:
    dlq_url: str
    target_url: str


@dataclass(frozen=True)
class StatusRequest:
    """List the DLQ's message move tasks."""

    dlq_url: str


@dataclass(frozen=True)
class RedriveRequest:
    queues: QueuePair
    dry_run: bool = False
    max_messages: int | None = None
    rate_per_second: float | None = None
    message_filter: MessageFilter = field(default_factory=MessageFilter)
    mode: str = "auto"

    def uses_native_move(self, quarantine_enabled: bool) -> bool:
        """Native move only when it does exactly what was asked.

        It cannot filter, preview, stop after N, count redrives or quarantine, so "auto" picks it
        only when none of those was asked for and no MAX_REDRIVES is configured.
        """
        if self.mode != "auto":
            return self.mode == "native"
        within_native_rate = self.rate_per_second is None or self.rate_per_second <= NATIVE_MAX_RATE
        return self.native_compatible and within_native_rate and not quarantine_enabled

    @property
    def native_compatible(self) -> bool:
        return self.message_filter.is_empty and not self.dry_run and self.max_messages is None


def parse_tier_queues(raw: str) -> dict[str, QueuePair]:
    """Parses the TIER_QUEUES variable: JSON {tier: {"queueUrl": ..., "dlqUrl": ...}}."""
    try:
        decoded = json.loads(raw or "{}")
        return {
            tier: QueuePair(dlq_url=urls["dlqUrl"], target_url=urls["queueUrl"])
            for tier, urls in decoded.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(f'TIER_QUEUES must be JSON {{tier: {{"queueUrl", "dlqUrl"}}}}: {error!r}') from error


def validate_event(event: Any) -> RedriveEvent | StatusEvent:
    """The event checked against its declared model (no queue lookup): the ops CLI calls this too."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    model = StatusEvent if "action" in event else RedriveEvent
    try:
        return model.model_validate(event)
    except ValidationError as invalid:
        raise InvalidEvent(_reason(invalid, model)) from None


def parse_event(event: Any, tier_queues: Mapping[str, QueuePair]) -> RedriveRequest | StatusRequest:
    parsed = validate_event(event)
    if isinstance(parsed, StatusEvent):
        return StatusRequest(dlq_url=_queues(parsed.tier, parsed.dlq_url, None, tier_queues).dlq_url)
    raw_filter = parsed.filter or FilterEvent()
    return RedriveRequest(
        queues=_queues(parsed.tier, parsed.dlq_url, parsed.target_url, tier_queues),
        dry_run=parsed.dry_run,
        max_messages=parsed.max_messages,
        rate_per_second=parsed.rate_per_second,
        message_filter=MessageFilter(
            types=frozenset(raw_filter.types or ()),
            error_types=frozenset(raw_filter.error_types or ()),
            older_than_seconds=raw_filter.older_than_seconds,
            newer_than_seconds=raw_filter.newer_than_seconds,
        ),
        mode=parsed.mode,
    )


def _queues(tier: str | None, dlq_url: str | None, target_url: str | None,
            tier_queues: Mapping[str, QueuePair]) -> QueuePair:
    if tier is not None:
        if tier not in tier_queues:
            known = ", ".join(sorted(tier_queues)) or "none configured"
            raise InvalidEvent(f"unknown tier {tier!r} (known: {known})")
        queues = tier_queues[tier]
    else:
        queues = QueuePair(dlq_url=dlq_url or "", target_url=target_url or "")
    fifo = [url for url in (queues.dlq_url, queues.target_url) if url.endswith(FIFO_SUFFIX)]
    if fifo:
        # A FIFO copy needs a message group (and dedup id) the DLQ message does not carry.
        raise InvalidEvent(f"FIFO queues are not supported: {fifo[0]}")
    return queues


def _reason(invalid: ValidationError, model: type[BaseModel]) -> str:
    """One line naming each offending field the way the event spells it."""
    parts = []
    for error in invalid.errors()[:5]:
        location = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            where = "filter" if location.startswith("filter.") else "event"
            allowed = FilterEvent if where == "filter" else model
            names = ", ".join(sorted(f.alias or name for name, f in allowed.model_fields.items()))
            parts.append(f"unknown {where} key {location.rsplit('.', 1)[-1]} (allowed: {names})")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        value = f", got {error['input']!r}" if location and not isinstance(error["input"], dict) else ""
        parts.append(f"{location}: {message}{value}" if location else message)
    return "; ".join(parts)
