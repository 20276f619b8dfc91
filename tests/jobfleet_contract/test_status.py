"""The transition table and the status store on the moto server: transitions only move forward, and
every writer (API, worker, run-one, redrive) goes through the same rules."""

from __future__ import annotations

import time
from typing import get_args

import pytest

from jobfleet_contract.status import (
    NEW,
    STATES,
    TRANSITIONS,
    JobState,
    JobStatusStore,
    Run,
    Transition,
    may_apply,
    status_store_from_env,
)
from jobfleet_contract.timestamps import iso_now


def test_the_job_state_type_lists_exactly_the_states():
    # The API's response model is typed with JobState; a state added to STATES alone would be
    # rejected on the way out.
    assert get_args(JobState) == STATES


@pytest.fixture()
def store(jobs_table):
    return JobStatusStore(jobs_table, tier="standard")


def test_the_table_covers_every_state_and_nothing_leaves_succeeded():
    assert {target for target, _ in TRANSITIONS.values()} == set(STATES)
    assert not any(may_apply(transition, "succeeded") for transition in Transition)
    assert may_apply(Transition.SUBMIT, NEW) and not may_apply(Transition.SUBMIT, "failed")
    assert not may_apply(Transition.REDRIVE, NEW)  # a redrive never creates a record
    assert [t for t in Transition if may_apply(t, "dead-lettered")] == [Transition.REDRIVE]


def test_happy_lifecycle_records_every_field(store):
    assert store.mark_submitted("j1", "report", "standard", "2026-01-01T00:00:00.000Z")
    assert store.mark_running("j1", "report", 1)
    assert store.mark_failed("j1", "report", 1, "ConnectionError: refused")
    assert store.mark_running("j1", "report", 2)
    assert store.mark_succeeded("j1", "report", 2)
    item = store.get("j1")
    assert item["status"] == "succeeded" and item["attempts"] == 2 and item["tier"] == "standard"
    assert item["type"] == "report" and item["lastError"] == "ConnectionError: refused"
    assert item["submittedAt"] == "2026-01-01T00:00:00.000Z"
    assert {"startedAt", "finishedAt", "updatedAt", "expiresAt"} <= set(item)
    assert item["expiresAt"] > 0


def test_late_redelivery_cannot_move_a_finished_job_back(store):
    store.mark_running("j2", "report", 1)
    store.mark_succeeded("j2", "report", 1)
    assert not store.mark_running("j2", "report", 2)
    assert not store.mark_failed("j2", "report", 2, "late")
    assert not store.mark_dead_lettered("j2", "report", 2, "late")
    assert not store.mark_submitted("j2", "report", "standard", iso_now())  # a duplicate id: no reopening
    assert not store.mark_redriven("j2", 1)
    assert store.get("j2")["status"] == "succeeded"

    store.mark_dead_lettered("j3", "report", 5, "TimeoutError: x")
    assert not store.mark_running("j3", "report", 6)
    assert not store.mark_failed("j3", "report", 6, "late")
    assert not store.mark_succeeded("j3", "report", 6)
    assert store.get("j3")["status"] == "dead-lettered"


def test_redrive_queues_a_dead_lettered_job_again_with_a_clean_slate_and_a_fresh_ttl(store):
    store.mark_running("j4", "report", 3)
    store.mark_dead_lettered("j4", "report", 3, "TimeoutError: slow")
    store._table.update_item(Key={"jobId": "j4"}, UpdateExpression="SET expiresAt = :old",
                             ExpressionAttributeValues={":old": 1})  # the record was about to expire
    assert store.mark_redriven("j4", 1)
    item = store.get("j4")
    assert item["status"] == "queued" and "lastError" not in item and "finishedAt" not in item
    assert abs(int(item["expiresAt"]) - (time.time() + 30 * 86400)) < 120
    copy = Run("copy-of-j4", 1)
    assert store.mark_running("j4", "report", 1, copy) and store.mark_succeeded("j4", "report", 1, copy)
    assert store.get("j4")["attempts"] == 1 and store.get("j4")["generation"] == 1


def test_redrive_does_not_overwrite_what_a_worker_wrote_after_the_copy_was_sent(store):
    # A job's final failure, then its copy (generation 1) picked up and failed again before the
    # redrive's own status write lands.
    store.mark_failed("j6", "report", 1, "BatchJobFailed: exit 1", Run("m1", 0))
    assert store.mark_running("j6", "report", 1, Run("m2", 1))
    assert store.mark_failed("j6", "report", 1, "ConnectionError: refused", Run("m2", 1))
    assert not store.mark_redriven("j6", 1)
    item = store.get("j6")
    assert item["status"] == "failed" and item["lastError"] == "ConnectionError: refused"


def test_a_released_attempt_is_queued_again_and_its_late_outcome_cannot_overwrite_the_next(store):
    run = Run("m9", 0)
    assert store.mark_running("j9", "report", 1, run)
    assert store.mark_released("j9", "report", 1, run)
    assert store.get("j9")["status"] == "queued" and store.get("j9")["attempts"] == 1
    assert store.mark_running("j9", "report", 2, run)
    assert not store.mark_failed("j9", "report", 1, "late", run)  # attempt 1's late outcome
    assert not store.mark_released("j9", "report", 1, run)
    assert not store.mark_released("j9", "report", 2, Run("other", 0))  # only the running run hands back
    assert store.get("j9")["status"] == "running" and store.get("j9")["attempts"] == 2
    assert store.mark_succeeded("j9", "report", 2, run)
    assert not store.mark_released("j9", "report", 2, run)  # never reopens a success
    assert store.get("j9")["status"] == "succeeded"


def test_redrive_refused_for_a_running_or_unknown_job(store):
    store.mark_running("j5", "report", 1)
    assert not store.mark_redriven("j5", 1)
    assert not store.mark_redriven("nobody", 1)
    assert store.get("nobody") is None


def test_forgetting_a_submission_keeps_a_job_a_worker_already_moved_on(store):
    store.mark_submitted("j7", "report", "standard", iso_now())
    store.forget_submitted("j7")
    assert store.get("j7") is None
    store.mark_submitted("j8", "report", "standard", iso_now())
    store.mark_running("j8", "report", 1)
    store.forget_submitted("j8")
    assert store.get("j8")["status"] == "running"


def test_store_only_when_table_configured(moto_endpoint):
    assert status_store_from_env({}) is None
    assert isinstance(status_store_from_env({"STATUS_TABLE": "t", "TIER": "batch"}), JobStatusStore)
