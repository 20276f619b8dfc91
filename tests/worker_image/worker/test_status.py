"""Job status in DynamoDB on the moto server: transitions only move forward."""

from __future__ import annotations

import uuid

import boto3
import pytest
from worker.status import JobStatusStore, status_store_from_env


@pytest.fixture()
def store(moto_endpoint):
    dynamodb = boto3.resource("dynamodb", endpoint_url=moto_endpoint)
    name = f"status-{uuid.uuid4().hex[:8]}"
    table = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return JobStatusStore(table, tier="standard")


def test_happy_lifecycle_records_every_field(store):
    assert store.mark_queued("j1", "report")
    assert store.mark_running("j1", "report", 1)
    assert store.mark_failed("j1", "report", 1, "ConnectionError: refused")
    assert store.mark_running("j1", "report", 2)
    assert store.mark_succeeded("j1", "report", 2)
    item = store.get("j1")
    assert item["status"] == "succeeded" and item["attempts"] == 2 and item["tier"] == "standard"
    assert item["type"] == "report" and item["lastError"] == "ConnectionError: refused"
    assert {"startedAt", "finishedAt", "updatedAt", "expiresAt"} <= set(item)
    assert item["expiresAt"] > 0


def test_late_redelivery_cannot_move_a_finished_job_back(store):
    store.mark_running("j2", "report", 1)
    store.mark_succeeded("j2", "report", 1)
    assert not store.mark_running("j2", "report", 2)
    assert not store.mark_failed("j2", "report", 2, "late")
    assert not store.mark_dead_lettered("j2", "report", 2, "late")
    assert not store.mark_queued("j2", "report")  # a duplicate submission does not reopen it
    assert store.get("j2")["status"] == "succeeded"

    store.mark_dead_lettered("j3", "report", 5, "TimeoutError: x")
    assert not store.mark_running("j3", "report", 6)
    assert not store.mark_failed("j3", "report", 6, "late")
    assert not store.mark_succeeded("j3", "report", 6)
    assert store.get("j3")["status"] == "dead-lettered"


def test_redrive_queues_a_dead_lettered_job_again_with_a_clean_slate(store):
    store.mark_running("j4", "report", 3)
    store.mark_dead_lettered("j4", "report", 3, "TimeoutError: slow")
    assert store.mark_queued("j4", "report")
    item = store.get("j4")
    assert item["status"] == "queued" and "lastError" not in item and "finishedAt" not in item
    assert store.mark_running("j4", "report", 1) and store.mark_succeeded("j4", "report", 1)


def test_queued_refused_for_a_running_job(store):
    store.mark_running("j5", "report", 1)
    assert not store.mark_queued("j5", "report")


def test_store_only_when_table_configured(moto_endpoint):
    assert status_store_from_env({}) is None
    assert isinstance(status_store_from_env({"STATUS_TABLE": "t", "TIER": "batch"}), JobStatusStore)


def test_a_late_outcome_of_an_older_attempt_cannot_overwrite_a_newer_one(store):
    """Defect 10: attempt 1 failing late must not overwrite attempt 2's state or move attempts back."""
    assert store.mark_running("j6", "report", 1)
    assert store.mark_running("j6", "report", 2)  # redelivered elsewhere while attempt 1 still ran
    assert not store.mark_failed("j6", "report", 1, "TimeoutError: late")
    assert not store.mark_dead_lettered("j6", "report", 1, "TimeoutError: late")
    assert not store.mark_released("j6", "report", 1)
    item = store.get("j6")
    assert item["status"] == "running" and item["attempts"] == 2


def test_released_job_goes_back_to_queued_and_a_redrive_restarts_the_attempt_count(store):
    assert store.mark_running("j7", "report", 3)
    assert store.mark_released("j7", "report", 3)
    assert store.get("j7")["status"] == "queued" and store.get("j7")["attempts"] == 3
    assert store.mark_running("j7", "report", 4)
    assert store.mark_dead_lettered("j7", "report", 4, "boom")
    assert store.mark_queued("j7", "report")  # redrive: a fresh attempt budget
    assert store.mark_running("j7", "report", 1)
