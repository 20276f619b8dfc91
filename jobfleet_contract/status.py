"""Job states, THE transition table, the status-table item shape and the one store every writer uses.

Table key ``jobId`` (string), TTL attribute ``expiresAt`` (epoch seconds). Writers: the job API
(submit), the worker and run-one (start, fail, succeed, dead-letter), the redrive (redriven).
Every write is conditional on TRANSITIONS: SQS is at-least-once, so a late redelivery of a job that
already succeeded must not flip it back, and a redrive must not overwrite what a worker wrote after
the redriven copy was sent. Methods return False when the condition refused the write (the caller
logs; the job itself is unaffected).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from jobfleet_contract import environment as names
from jobfleet_contract.timestamps import iso_now

if TYPE_CHECKING:  # boto3-stubs: a type-checking dependency only
    from mypy_boto3_dynamodb import DynamoDBServiceResource
    from mypy_boto3_dynamodb.service_resource import Table

log = logging.getLogger("jobfleet.status")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
DEAD_LETTERED = "dead-lettered"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD_LETTERED)
# The same states as a type (pydantic models, annotations); a test keeps the two equal.
JobState = Literal["queued", "running", "succeeded", "failed", "dead-lettered"]
NEW = None  # no item yet: a worker may see a job before (or without) the API's record
DEFAULT_TTL_DAYS = 30
ERROR_LIMIT = 1000

# Item attributes (the API's GET /jobs/{jobId} reads them).
JOB_ID, STATUS, TYPE, TIER, ATTEMPTS = "jobId", "status", "type", "tier", "attempts"
SUBMITTED_AT, STARTED_AT, FINISHED_AT, UPDATED_AT = "submittedAt", "startedAt", "finishedAt", "updatedAt"
LAST_ERROR, EXPIRES_AT = "lastError", "expiresAt"


class Transition(Enum):
    SUBMIT = "submit"  # the API, before it sends the job
    START = "start"  # an attempt begins
    FAIL = "fail"  # an attempt failed and another follows (run-one: the Batch job failed)
    SUCCEED = "succeed"
    DEAD_LETTER = "dead-letter"
    REDRIVE = "redrive"  # a dead-lettered/failed job's copy went back to its queue


_ACTIVE = frozenset({NEW, QUEUED, RUNNING, FAILED})
# transition -> (state it writes, states it may follow). The only rule any writer applies.
TRANSITIONS: Mapping[Transition, tuple[str, frozenset[str | None]]] = {
    Transition.SUBMIT: (QUEUED, frozenset({NEW})),
    Transition.START: (RUNNING, _ACTIVE),
    Transition.FAIL: (FAILED, _ACTIVE),
    Transition.SUCCEED: (SUCCEEDED, _ACTIVE),
    Transition.DEAD_LETTER: (DEAD_LETTERED, _ACTIVE),
    # Never creates an item (a job without a record stays without one), never reopens a success.
    Transition.REDRIVE: (QUEUED, frozenset({DEAD_LETTERED, FAILED})),
}


def may_apply(transition: Transition, current: str | None) -> bool:
    """Whether ``transition`` may follow a job in state ``current`` (None: no item)."""
    return current in TRANSITIONS[transition][1]


@dataclass(frozen=True)
class _Write:
    fields: dict[str, Any]
    remove: tuple[str, ...] = ()
    # Refuse when the item was written at or after this timestamp (see mark_redriven).
    not_updated_since: str | None = None


class JobStatusStore:
    """Every status write goes through here. ``table`` is a boto3 DynamoDB Table resource."""

    def __init__(self, table: Table, tier: str = "default", ttl_days: float = DEFAULT_TTL_DAYS,
                 now: Callable[[], str] = iso_now) -> None:
        self._table = table
        self._tier = tier
        self._ttl_seconds = int(ttl_days * 86400)
        self._now = now

    def _apply(self, job_id: str, transition: Transition, write: _Write) -> bool:
        status, allowed = TRANSITIONS[transition]
        fields = {**write.fields, STATUS: status, UPDATED_AT: self._now(),
                  EXPIRES_AT: int(time.time()) + self._ttl_seconds}
        names = {f"#{key}": key for key in (*fields, *write.remove)}
        values: dict[str, Any] = {f":{key}": value for key, value in fields.items()}
        update = "SET " + ", ".join(f"#{key} = :{key}" for key in fields)
        if write.remove:
            update += " REMOVE " + ", ".join(f"#{key}" for key in write.remove)
        states = sorted(state for state in allowed if state is not NEW)
        clauses = []
        if NEW in allowed:
            names[f"#{JOB_ID}"] = JOB_ID
            clauses.append(f"attribute_not_exists(#{JOB_ID})")
        if states:
            placeholders = [f":from{index}" for index in range(len(states))]
            values.update(zip(placeholders, states, strict=True))
            clauses.append(f"#{STATUS} IN ({', '.join(placeholders)})")
        condition = " OR ".join(clauses)
        if write.not_updated_since is not None:
            values[":since"] = write.not_updated_since
            condition = f"({condition}) AND (attribute_not_exists(#{UPDATED_AT}) OR #{UPDATED_AT} < :since)"
        try:
            self._table.update_item(
                Key={JOB_ID: job_id},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            log.info("status transition refused", extra={"jobId": job_id, "transition": transition.value})
            return False
        return True

    def mark_submitted(self, job_id: str, job_type: str, tier: str, submitted_at: str) -> bool:
        """The API's record, written before the send; False if the job id already has one."""
        return self._apply(job_id, Transition.SUBMIT, _Write(
            {TYPE: job_type, TIER: tier, ATTEMPTS: 0, SUBMITTED_AT: submitted_at}))

    def forget_submitted(self, job_id: str) -> None:
        """Undo mark_submitted after a failed send, unless a worker already moved the job on."""
        try:
            self._table.delete_item(
                Key={JOB_ID: job_id},
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={"#status": STATUS},
                ExpressionAttributeValues={":queued": QUEUED},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def mark_running(self, job_id: str, job_type: str, attempt: int) -> bool:
        return self._apply(job_id, Transition.START, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, STARTED_AT: self._now()}))

    def mark_failed(self, job_id: str, job_type: str, attempt: int, error: str) -> bool:
        """An attempt failed and another will follow (or, for run-one, the Batch job failed)."""
        return self._apply(job_id, Transition.FAIL, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, LAST_ERROR: error[:ERROR_LIMIT]}))

    def mark_succeeded(self, job_id: str, job_type: str, attempt: int) -> bool:
        return self._apply(job_id, Transition.SUCCEED, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, FINISHED_AT: self._now()}))

    def mark_dead_lettered(self, job_id: str, job_type: str, attempt: int, error: str) -> bool:
        return self._apply(job_id, Transition.DEAD_LETTER, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, LAST_ERROR: error[:ERROR_LIMIT],
             FINISHED_AT: self._now()}))

    def mark_redriven(self, job_id: str, copied_at: str) -> bool:
        """The redrive sent the job's copy back at ``copied_at`` (taken before the send): queued again,
        attempt fields cleared, TTL restarted. Refused when a worker wrote the item since ``copied_at``
        (it already picked the copy up; its state is the newer truth)."""
        return self._apply(job_id, Transition.REDRIVE, _Write(
            {}, remove=(STARTED_AT, FINISHED_AT, LAST_ERROR), not_updated_since=copied_at))

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self._table.get_item(Key={JOB_ID: job_id}, ConsistentRead=True).get("Item")


def status_store_from_env(env: Mapping[str, str], dynamodb: DynamoDBServiceResource | None = None
                          ) -> JobStatusStore | None:
    """The store a runtime writes through, from STATUS_TABLE / STATUS_TTL_DAYS / TIER; None when off.
    ``dynamodb``: a boto3 DynamoDB resource (default: boto3's, from the process environment)."""
    table_name, ttl_days = names.status_table_settings(env, DEFAULT_TTL_DAYS)
    if table_name is None:
        return None
    if dynamodb is None:
        import boto3  # only runtimes that track status pay for the resource API

        dynamodb = boto3.resource("dynamodb")
    return JobStatusStore(dynamodb.Table(table_name), env.get(names.TIER) or "default", ttl_days)
