"""The Lambda entry point: configuration from the environment, Powertools wrappers, moto as SQS."""

from __future__ import annotations

import json

import pytest
from redrive import handler as redrive_handler


@pytest.fixture()
def function_environment(monkeypatch, queues):
    monkeypatch.setenv("TIER_QUEUES", json.dumps(
        {"standard": {"queueUrl": queues.target_url, "dlqUrl": queues.dlq_url}}))
    monkeypatch.setenv("MAX_REDRIVES", "2")
    monkeypatch.delenv("STATUS_TABLE", raising=False)


@pytest.mark.usefixtures("function_environment")
def test_a_tier_event_redrives_that_tier_with_the_configured_quarantine(queues, dead_letter, fake_context):
    queues.put_dead_letters([dead_letter("report"), dead_letter("report", redrive_count="2")])

    # No filter: with MAX_REDRIVES set, auto mode stays selective so the quarantine holds.
    result = redrive_handler.handler({"tier": "standard"}, fake_context())

    assert (result["mode"], result["moved"], result["quarantined"]) == ("selective", 1, 1)
    assert queues.visible_count(queues.target_url) == 1


@pytest.mark.usefixtures("function_environment")
def test_an_invalid_event_returns_the_reason(fake_context):
    assert redrive_handler.handler({"tier": "bulk"}, fake_context()) == {
        "error": "unknown tier 'bulk' (known: standard)"}


def test_a_misconfigured_function_raises_for_the_failure_alarm(monkeypatch, fake_context):
    monkeypatch.setenv("TIER_QUEUES", "not json")
    with pytest.raises(ValueError, match="TIER_QUEUES"):
        redrive_handler.handler({"tier": "standard"}, fake_context())
    monkeypatch.setenv("TIER_QUEUES", "{}")
    monkeypatch.setenv("MAX_REDRIVES", "0")
    with pytest.raises(ValueError, match="MAX_REDRIVES"):
        redrive_handler.handler({"tier": "standard"}, fake_context())
