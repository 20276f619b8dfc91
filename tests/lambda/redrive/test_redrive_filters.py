"""The filter predicate and the message readers it relies on (pure, no AWS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from redrive.filters import MessageFilter

from jobfleet_contract.attributes import MalformedMessage, attributes_for_copy, redrive_count

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(job_type=None, error_type=None, failed_at=None, sent_at=None, body_type="report", extra=None):
    attributes = dict(extra or {})
    if job_type is not None:
        attributes["jobfleet.jobType"] = {"DataType": "String", "StringValue": job_type}
    if error_type is not None:
        attributes["jobfleet.errorType"] = {"DataType": "String", "StringValue": error_type}
    if failed_at is not None:
        attributes["jobfleet.failedAt"] = {"DataType": "String", "StringValue": failed_at}
    system = {} if sent_at is None else {"SentTimestamp": str(int(sent_at.timestamp() * 1000))}
    envelope = {"jobId": "j1", "type": body_type, "payload": {}, "submittedAt": "2026-01-01T00:00:00Z"}
    body = json.dumps(envelope)
    return {"MessageId": "m1", "Body": body, "MessageAttributes": attributes, "Attributes": system}


def test_empty_filter_matches_everything():
    assert MessageFilter().is_empty
    assert MessageFilter().matches(message(), NOW)
    assert MessageFilter().matches({"MessageId": "m", "Body": "not json"}, NOW)


def test_types_use_the_job_type_attribute_over_the_body():
    only_reports = MessageFilter(types=frozenset({"report"}))
    assert only_reports.matches(message(job_type="report", body_type="analysis"), NOW)
    assert not only_reports.matches(message(job_type="analysis", body_type="report"), NOW)


def test_types_fall_back_to_the_envelope_type_when_the_attribute_is_missing():
    only_reports = MessageFilter(types=frozenset({"report", "onboarding"}))
    assert only_reports.matches(message(body_type="onboarding"), NOW)
    assert not only_reports.matches(message(body_type="analysis"), NOW)
    assert not only_reports.matches({"MessageId": "m", "Body": "{malformed"}, NOW)


def test_error_types_match_the_worker_error_attribute():
    timeouts = MessageFilter(error_types=frozenset({"TimeoutError"}))
    assert timeouts.matches(message(error_type="TimeoutError"), NOW)
    assert not timeouts.matches(message(error_type="ValueError"), NOW)
    assert not timeouts.matches(message(), NOW)


def test_types_and_error_types_must_both_hold():
    both = MessageFilter(types=frozenset({"report"}), error_types=frozenset({"TimeoutError"}))
    assert both.matches(message(job_type="report", error_type="TimeoutError"), NOW)
    assert not both.matches(message(job_type="report", error_type="ValueError"), NOW)
    assert not both.matches(message(job_type="analysis", error_type="TimeoutError"), NOW)


@pytest.mark.parametrize(
    ("age", "older_than", "newer_than", "expected"),
    [
        (timedelta(hours=2), 3600, None, True),
        (timedelta(minutes=30), 3600, None, False),
        (timedelta(minutes=30), None, 3600, True),
        (timedelta(hours=2), None, 3600, False),
        (timedelta(hours=2), 3600, 86_400, True),
        (timedelta(days=2), 3600, 86_400, False),
    ],
)
def test_age_window_uses_failed_at(age, older_than, newer_than, expected):
    age_filter = MessageFilter(older_than_seconds=older_than, newer_than_seconds=newer_than)
    # SentTimestamp says "just now": only failedAt can make the expected answer come out.
    failed = message(failed_at=(NOW - age).isoformat(), sent_at=NOW)
    assert age_filter.matches(failed, NOW) is expected


def test_failed_at_accepts_a_z_suffix_and_naive_times_as_utc():
    older_than_hour = MessageFilter(older_than_seconds=3600)
    assert older_than_hour.matches(message(failed_at="2026-03-01T10:00:00Z"), NOW)
    assert older_than_hour.matches(message(failed_at="2026-03-01T10:00:00"), NOW)
    assert not older_than_hour.matches(message(failed_at="2026-03-01T11:30:00"), NOW)


def test_age_falls_back_to_sent_timestamp():
    older_than_hour = MessageFilter(older_than_seconds=3600)
    assert older_than_hour.matches(message(sent_at=NOW - timedelta(hours=2)), NOW)
    assert not older_than_hour.matches(message(sent_at=NOW - timedelta(minutes=5)), NOW)
    unreadable = message(failed_at="yesterday-ish", sent_at=NOW - timedelta(hours=2))
    assert older_than_hour.matches(unreadable, NOW)


def test_age_filter_does_not_match_a_message_without_any_time():
    assert not MessageFilter(newer_than_seconds=3600).matches(message(), NOW)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        (None, 0),
        ({"DataType": "Number", "StringValue": "2"}, 2),
        ({"DataType": "String", "StringValue": "3"}, 3),
        ({"DataType": "Number", "StringValue": "1.0"}, 1),
    ],
)
def test_redrive_count_reads_number_or_string_attributes(attribute, expected):
    extra = {} if attribute is None else {"jobfleet.redriveCount": attribute}
    assert redrive_count(message(extra=extra)) == expected


@pytest.mark.parametrize(
    "attribute",
    [
        {"DataType": "String", "StringValue": "lots"},
        {"DataType": "Number", "StringValue": "Infinity"},
        {"DataType": "Number", "StringValue": "NaN"},
        {"DataType": "Number", "StringValue": "1e999999"},
        {"DataType": "Number", "StringValue": "-1"},
        {"DataType": "Number", "StringValue": "1.5"},
        {"DataType": "Binary", "BinaryValue": b"\x02"},
    ],
)
def test_a_redrive_count_that_is_not_a_count_is_malformed(attribute):
    with pytest.raises(MalformedMessage, match=r"jobfleet\.redriveCount"):
        redrive_count(message(extra={"jobfleet.redriveCount": attribute}))


def test_a_failed_at_at_the_end_of_the_calendar_is_malformed_not_an_overflow():
    window = MessageFilter(older_than_seconds=60)
    with pytest.raises(MalformedMessage, match=r"jobfleet\.failedAt"):
        window.matches(message(failed_at="0001-01-01T00:00:00+23:59"), NOW)


def test_copy_attributes_keep_every_attribute_and_increment_the_redrive_count():
    received = message(job_type="report", extra={
        "jobfleet.redriveCount": {"DataType": "String", "StringValue": "1", "StringListValues": []},
        "trace": {"DataType": "Binary", "BinaryValue": b"\x00\x01", "BinaryListValues": []},
        "priority": {"DataType": "Number.int", "StringValue": "7"},
    })
    assert attributes_for_copy(received) == {
        "jobfleet.jobType": {"DataType": "String", "StringValue": "report"},
        "jobfleet.redriveCount": {"DataType": "Number", "StringValue": "2"},
        "trace": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        "priority": {"DataType": "Number.int", "StringValue": "7"},
    }
