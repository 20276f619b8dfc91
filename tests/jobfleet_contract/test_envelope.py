"""Envelope records: what a breaker deferral re-sends, and bodies the parser must refuse cleanly."""

from __future__ import annotations

import pytest

from jobfleet_contract.envelope import (
    Deferral,
    deferred_body,
    envelope_fields,
    original_body,
    parse_envelope,
    read_deferral,
)
from jobfleet_contract.errors import InvalidEnvelope

ORIGINAL = '{"jobId": "j", "type": "t", "payload": {}, "submittedAt": "2024-01-01T00:00:00Z"}'


def test_deferral_bookkeeping_travels_in_the_body_whatever_the_attributes():
    """Issue 14, defect 9: deferral state no longer needs a free message attribute."""
    body = deferred_body(Deferral(ORIGINAL, prior_attempts=2, deferrals=3))
    assert read_deferral(body) == Deferral(ORIGINAL, 2, 3)
    assert read_deferral(ORIGINAL) == Deferral(ORIGINAL)
    assert read_deferral('{"jobfleet.deferred": 1}') == Deferral('{"jobfleet.deferred": 1}')
    assert deferred_body(Deferral("x" * 262_100)) is None  # over SQS's body limit: the caller falls back
    # Every reader sees the job inside (e.g. the redrive reading a DLQ copy SQS's own redrive made).
    assert original_body(body) == ORIGINAL
    assert envelope_fields(body)["jobId"] == "j"
    assert parse_envelope(body).job_id == "j"


def test_deeply_nested_body_is_an_invalid_envelope_not_a_recursion_error():
    """Issue 14, defect 4."""
    nested = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidEnvelope, match="nested too deeply"):
        parse_envelope(nested)
    assert envelope_fields(nested) == {} and original_body(nested) == nested
