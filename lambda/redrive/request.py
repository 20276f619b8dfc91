"""Turns a redrive event into a validated request; every rejection is an InvalidEvent with a reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redrive.filters import MessageFilter

# StartMessageMoveTask's upper bound for MaxNumberOfMessagesPerSecond.
NATIVE_MAX_RATE = 500
MODES = ("auto", "native", "selective")
_REDRIVE_KEYS = {"tier", "dlqUrl", "targetUrl", "dryRun", "maxMessages", "ratePerSecond", "filter", "mode"}
_STATUS_KEYS = {"action", "tier", "dlqUrl"}
_FILTER_KEYS = {"types", "errorTypes", "olderThanSeconds", "newerThanSeconds"}


class InvalidEvent(ValueError):
    """The event cannot be acted on; the message says why."""


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


def parse_event(event: Any, tier_queues: Mapping[str, QueuePair]) -> RedriveRequest | StatusRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    if "action" in event:
        if event["action"] != "status":
            raise InvalidEvent(f"unknown action {event['action']!r} (only 'status')")
        _reject_unknown_keys(event, _STATUS_KEYS, "event")
        return StatusRequest(dlq_url=_queues(event, tier_queues, need_target=False).dlq_url)
    # Unknown keys are refused: a typo such as "dryrun" must not turn a preview into a real move.
    _reject_unknown_keys(event, _REDRIVE_KEYS, "event")
    mode = event.get("mode", "auto")
    if mode not in MODES:
        raise InvalidEvent(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    request = RedriveRequest(
        queues=_queues(event, tier_queues, need_target=True),
        dry_run=_boolean(event, "dryRun"),
        max_messages=_positive_int(event, "maxMessages"),
        rate_per_second=_positive_number(event, "ratePerSecond"),
        message_filter=_message_filter(event.get("filter")),
        mode=mode,
    )
    if mode == "native":
        if not request.native_compatible:
            raise InvalidEvent("mode 'native' cannot filter, dry-run or stop at maxMessages; use 'selective'")
        if request.rate_per_second is not None and request.rate_per_second > NATIVE_MAX_RATE:
            raise InvalidEvent(f"ratePerSecond must be <= {NATIVE_MAX_RATE} in native mode")
    return request


def _reject_unknown_keys(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise InvalidEvent(
            f"unknown {where} key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _queues(event: Mapping[str, Any], tier_queues: Mapping[str, QueuePair], need_target: bool) -> QueuePair:
    if "tier" in event:
        if "dlqUrl" in event or "targetUrl" in event:
            raise InvalidEvent("give either tier or dlqUrl/targetUrl, not both")
        tier = event["tier"]
        if tier not in tier_queues:
            known = ", ".join(sorted(tier_queues)) or "none configured"
            raise InvalidEvent(f"unknown tier {tier!r} (known: {known})")
        return tier_queues[tier]
    dlq_url = event.get("dlqUrl")
    target_url = event.get("targetUrl")
    if not isinstance(dlq_url, str) or not dlq_url:
        raise InvalidEvent("event needs tier, or dlqUrl and targetUrl")
    if need_target and (not isinstance(target_url, str) or not target_url):
        raise InvalidEvent("dlqUrl needs targetUrl (the queue to send messages back to)")
    return QueuePair(dlq_url=dlq_url, target_url=target_url or "")


def _boolean(mapping: Mapping[str, Any], key: str) -> bool:
    value = mapping.get(key, False)
    if not isinstance(value, bool):
        raise InvalidEvent(f"{key} must be true or false, got {value!r}")
    return value


def _positive_int(mapping: Mapping[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEvent(f"{key} must be a positive integer, got {value!r}")
    return value


def _positive_number(mapping: Mapping[str, Any], key: str) -> float | None:
    value = _non_negative_number(mapping, key)
    if value == 0:
        raise InvalidEvent(f"{key} must be > 0, got {value!r}")
    return value


def _non_negative_number(mapping: Mapping[str, Any], key: str) -> float | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidEvent(f"{key} must be a non-negative number, got {value!r}")
    return float(value)


def _names(mapping: Mapping[str, Any], key: str) -> frozenset[str]:
    value = mapping.get(key)
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidEvent(f"filter.{key} must be a non-empty list of names, got {value!r}")
    return frozenset(value)


def _message_filter(raw: Any) -> MessageFilter:
    if raw is None:
        return MessageFilter()
    if not isinstance(raw, dict):
        raise InvalidEvent(f"filter must be an object, got {raw!r}")
    _reject_unknown_keys(raw, _FILTER_KEYS, "filter")
    older_than = _non_negative_number(raw, "olderThanSeconds")
    newer_than = _non_negative_number(raw, "newerThanSeconds")
    if older_than is not None and newer_than is not None and older_than >= newer_than:
        raise InvalidEvent(
            f"empty time window: olderThanSeconds ({older_than:g}) must be less than"
            f" newerThanSeconds ({newer_than:g})"
        )
    return MessageFilter(
        types=_names(raw, "types"),
        error_types=_names(raw, "errorTypes"),
        older_than_seconds=older_than,
        newer_than_seconds=newer_than,
    )
