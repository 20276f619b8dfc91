"""Event validation and the choice between native and selective mode (pure, no AWS)."""

from __future__ import annotations

import pytest
from redrive.filters import MessageFilter
from redrive.request import (
    InvalidEvent,
    QueuePair,
    RedriveRequest,
    StatusRequest,
    parse_event,
    parse_tier_queues,
)

TIERS = {"critical": QueuePair(dlq_url="https://q/critical-dlq", target_url="https://q/critical")}


def test_a_tier_event_resolves_both_queues_and_reads_every_option():
    request = parse_event(
        {
            "tier": "critical",
            "dryRun": True,
            "maxMessages": 50,
            "ratePerSecond": 2.5,
            "mode": "selective",
            "filter": {"types": ["onboarding"], "errorTypes": ["TimeoutError"],
                       "olderThanSeconds": 60, "newerThanSeconds": 3600},
        },
        TIERS,
    )
    assert request == RedriveRequest(
        queues=TIERS["critical"],
        dry_run=True,
        max_messages=50,
        rate_per_second=2.5,
        message_filter=MessageFilter(types=frozenset({"onboarding"}), error_types=frozenset({"TimeoutError"}),
                                     older_than_seconds=60, newer_than_seconds=3600),
        mode="selective",
    )


def test_explicit_queue_urls_need_no_tier():
    request = parse_event({"dlqUrl": "https://q/a-dlq", "targetUrl": "https://q/a"}, {})
    assert request.queues == QueuePair(dlq_url="https://q/a-dlq", target_url="https://q/a")


def test_status_action_needs_only_the_dlq():
    assert parse_event({"action": "status", "tier": "critical"}, TIERS) == StatusRequest("https://q/critical-dlq")
    assert parse_event({"action": "status", "dlqUrl": "https://q/x"}, {}) == StatusRequest("https://q/x")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "must be a JSON object"),
        ({}, "needs tier, or dlqUrl and targetUrl"),
        ({"tier": "bulk"}, "unknown tier 'bulk' (known: critical)"),
        ({"tier": "critical", "dlqUrl": "https://q/x"}, "either tier or dlqUrl"),
        ({"dlqUrl": "https://q/x"}, "needs targetUrl"),
        ({"tier": "critical", "dryrun": True}, "unknown event key dryrun"),
        ({"tier": "critical", "dryRun": "yes"}, "dryRun: Input should be a valid boolean"),
        ({"tier": "critical", "maxMessages": 0}, "maxMessages: Input should be greater than or equal to 1"),
        ({"tier": "critical", "maxMessages": 2.5}, "maxMessages: Input should be a valid integer"),
        ({"tier": "critical", "maxMessages": True}, "maxMessages: Input should be a valid integer"),
        ({"tier": "critical", "ratePerSecond": 0}, "ratePerSecond: Input should be greater than 0"),
        ({"tier": "critical", "ratePerSecond": "fast"}, "ratePerSecond: Input should be a valid number"),
        ({"tier": "critical", "mode": "turbo"}, "mode: Input should be 'auto', 'native' or 'selective'"),
        ({"tier": "critical", "filter": ["report"]}, "filter: Input should be a valid dictionary"),
        ({"tier": "critical", "filter": {"type": ["report"]}}, "unknown filter key type"),
        ({"tier": "critical", "filter": {"types": "report"}}, "filter.types: Input should be a valid list"),
        ({"tier": "critical", "filter": {"errorTypes": []}}, "errorTypes: List should have at least 1"),
        ({"tier": "critical", "filter": {"olderThanSeconds": -5}}, "Input should be greater than or"),
        ({"tier": "critical", "filter": {"olderThanSeconds": 600, "newerThanSeconds": 60}},
         "empty time window"),
        ({"tier": "critical", "mode": "native", "dryRun": True}, "mode 'native' cannot filter"),
        ({"tier": "critical", "mode": "native", "filter": {"types": ["report"]}},
         "mode 'native' cannot filter"),
        ({"tier": "critical", "mode": "native", "ratePerSecond": 501}, "ratePerSecond must be <= 500"),
        ({"tier": "critical", "ratePerSecond": float("nan")}, "should be a finite number, got nan"),
        ({"tier": "critical", "ratePerSecond": float("inf")}, "should be a finite number, got inf"),
        ({"tier": "critical", "filter": {"newerThanSeconds": float("inf")}}, "should be a finite number"),
        ({"tier": "critical", "maxMessages": "10"}, "maxMessages: Input should be a valid integer"),
        ({"tier": "critical", "filter": {"types": [7]}}, "filter.types.0: Input should be a valid string"),
        ({"dlqUrl": "https://q/x-dlq.fifo", "targetUrl": "https://q/x.fifo"}, "FIFO queues are not"),
        ({"action": "cancel", "tier": "critical"}, "action: Input should be 'status'"),
        ({"action": "status", "tier": "critical", "dryRun": True}, "unknown event key dryRun"),
    ],
)
def test_invalid_events_are_refused_with_a_reason(event, reason):
    with pytest.raises(InvalidEvent) as refused:
        parse_event(event, TIERS)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("event", "quarantine_enabled", "native"),
    [
        ({}, False, True),
        ({"ratePerSecond": 100}, False, True),
        ({"ratePerSecond": 1000}, False, False),
        ({}, True, False),
        ({"mode": "native"}, True, True),
        ({"mode": "selective"}, False, False),
        ({"dryRun": True}, False, False),
        ({"maxMessages": 10}, False, False),
        ({"filter": {"errorTypes": ["TimeoutError"]}}, False, False),
    ],
)
def test_auto_mode_picks_native_only_when_it_does_exactly_what_was_asked(event, quarantine_enabled, native):
    request = parse_event({"tier": "critical", **event}, TIERS)
    assert request.uses_native_move(quarantine_enabled=quarantine_enabled) is native


def test_tier_queues_come_from_the_function_environment():
    raw = '{"critical": {"queueUrl": "https://q/c", "dlqUrl": "https://q/c-dlq"}}'
    assert parse_tier_queues(raw) == {"critical": QueuePair(dlq_url="https://q/c-dlq", target_url="https://q/c")}
    with pytest.raises(ValueError, match="TIER_QUEUES"):
        parse_tier_queues('{"critical": {"queueUrl": "https://q/c"}}')
    with pytest.raises(ValueError, match="TIER_QUEUES"):
        parse_tier_queues("[1, 2]")
