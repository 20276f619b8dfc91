"""The jobfleet.* attributes: what the worker writes on a dead letter."""

from __future__ import annotations

from jobfleet_contract.attributes import dead_letter_attributes


def test_dead_letter_attributes_carry_reason_and_keep_room_for_redrive_bookkeeping():
    original = {f"producer{i}": {"DataType": "String", "StringValue": str(i)} for i in range(5)}
    original["jobfleet.redriveCount"] = {"DataType": "Number", "StringValue": "2"}
    original["jobfleet.errorType"] = {"DataType": "String", "StringValue": "OldError"}
    attrs, dropped = dead_letter_attributes(
        original,
        error_type="ValueError",
        error_message="x" * 5000,
        attempt=4,
        worker_id="w-1",
        failed_at="2024-01-01T00:00:00.000Z",
        job_type="report",
    )
    assert len(attrs) == 10
    assert attrs["jobfleet.errorType"]["StringValue"] == "ValueError"  # fresh reason wins over a stale one
    assert len(attrs["jobfleet.errorMessage"]["StringValue"]) == 1000
    assert attrs["jobfleet.redriveCount"]["StringValue"] == "2"  # jobfleet.* kept before producer attrs
    assert {name for name in attrs if name.startswith("producer")} == {"producer0", "producer1", "producer2"}
    assert dropped == ["producer3", "producer4"]
