"""Job states, THE transition table, the status-table item shape and the one store every writer uses.

Which write wins when writes arrive out of order: every worker write names its run (`Run`: the SQS
message or Batch job it executes, and the message's redrive generation) and attempt. A newer
generation always wins; within a generation the run that wrote last keeps the record, and only a
START of another run takes it over (a native redrive re-runs the job under a new message with the
same generation), never from `succeeded`; within a run `attempts` never goes back. `decide` is the
rule as a pure function; the store writes it as one conditional UpdateItem (the tests check both
agree on random interleavings of every writer's events).

Table key ``jobId`` (string), TTL attribute ``expiresAt`` (epoch seconds). Writers: the job API
(submit), the worker and run-one (start, fail, succeed, dead-letter), the redrive (redriven).
Every write is conditional on TRANSITIONS: SQS is at-least-once, so a late redelivery of a job that
already succeeded must not flip it back, and a redrive must not overwrite what a worker wrote after
the redriven copy was sent. Methods return False when the condition refused the write (the caller
logs; the job itself is unaffected).
"""

from __future__ import annotations

import logging
import re
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
# The API client that submitted the job (its token's client): only it (or the readAny scope) may read it.
OWNER = "owner"
# Which run of the job the record describes (see Run).
GENERATION, RUN_ID = "generation", "runId"
# Items that are not jobs share the table under key prefixes: the redrive's copy ledger
# ("redrive#<DLQ message id>", see lambda/redrive/ledger.py); the API's idempotency claims.
LEDGER_PREFIX = "redrive#"
# Where a succeeded job's result is: {"bucket", "key", "bytes"} (results/<jobId>.json; docs/events.md).
RESULT = "result"


class Transition(Enum):
    SUBMIT = "submit"  # the API, before it sends the job
    START = "start"  # an attempt begins
    FAIL = "fail"  # an attempt failed and another follows (run-one: the Batch job failed)
    SUCCEED = "succeed"
    DEAD_LETTER = "dead-letter"
    REDRIVE = "redrive"  # a dead-lettered/failed job's copy went back to its queue
    RELEASE = "release"  # a running attempt was handed back to run again (worker drain; run-one retry)


_ACTIVE = frozenset({NEW, QUEUED, RUNNING, FAILED})
# transition -> (state it writes, states it may follow). The only rule any writer applies.
TRANSITIONS: Mapping[Transition, tuple[str, frozenset[str | None]]] = {
    Transition.SUBMIT: (QUEUED, frozenset({NEW})),
    Transition.START: (RUNNING, _ACTIVE),
    Transition.FAIL: (FAILED, _ACTIVE),
    Transition.SUCCEED: (SUCCEEDED, _ACTIVE),
    Transition.DEAD_LETTER: (DEAD_LETTERED, _ACTIVE),
    # Only the attempt that is running may hand itself back (same run, attempts never go back).
    Transition.RELEASE: (QUEUED, frozenset({RUNNING})),
    # Never creates an item (a job without a record stays without one), never reopens a success.
    Transition.REDRIVE: (QUEUED, frozenset({DEAD_LETTERED, FAILED})),
}


def may_apply(transition: Transition, current: str | None) -> bool:
    """Whether ``transition`` may follow a job in state ``current`` (None: no item)."""
    return current in TRANSITIONS[transition][1]


@dataclass(frozen=True)
class Run:
    """The execution a worker write comes from: ``run_id`` is the SQS message id (worker) or the
    Batch job id (run-one); ``generation`` the message's jobfleet.redriveCount (None: not known, as
    in a Batch job, which then orders by run and attempt only)."""

    run_id: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class Recorded:
    """What the rule reads of a record (status None: no record)."""

    status: str | None = None
    generation: int = 0
    run_id: str | None = None
    attempts: int = 0


_WORKER = frozenset({Transition.START, Transition.FAIL, Transition.SUCCEED, Transition.DEAD_LETTER,
                     Transition.RELEASE})


def decide(recorded: Recorded, transition: Transition, run: Run = Run(), attempt: int = 0,
           generation: int = 0) -> Recorded | None:
    """THE rule as a pure function: the record after the write, or None when it is refused.

    ``generation`` is the REDRIVE's (the copy's redrive count); worker writes carry ``run``/``attempt``.
    """
    target, allowed = TRANSITIONS[transition]
    if transition is Transition.SUBMIT:
        return Recorded(target) if recorded.status is None else None
    if transition is Transition.REDRIVE:
        if recorded.status in allowed and recorded.generation < generation:
            return Recorded(target, generation, None, 0)
        return None
    if recorded.status is None:
        return Recorded(target, run.generation or 0, run.run_id, attempt)
    gen = recorded.generation if run.generation is None else run.generation
    after = Recorded(target, gen, run.run_id or recorded.run_id, attempt)
    if gen != recorded.generation:
        return after if gen > recorded.generation else None
    if recorded.run_id is None or run.run_id is None or run.run_id == recorded.run_id:
        return after if recorded.status in allowed and attempt >= recorded.attempts else None
    # Another run of this generation: a native redrive's message, or a breaker re-send.
    return after if transition is Transition.START and recorded.status != SUCCEEDED else None


@dataclass(frozen=True)
class _Write:
    fields: dict[str, Any]
    remove: tuple[str, ...] = ()


class JobStatusStore:
    """Every status write goes through here. ``table`` is a boto3 DynamoDB Table resource."""

    def __init__(self, table: Table, tier: str = "default", ttl_days: float = DEFAULT_TTL_DAYS,
                 now: Callable[[], str] = iso_now) -> None:
        self._table = table
        self._tier = tier
        self._ttl_seconds = int(ttl_days * 86400)
        self._now = now

    def _apply(self, job_id: str, transition: Transition, write: _Write, run: Run | None = None,
               attempt: int = 0, generation: int = 0) -> bool:
        status, allowed = TRANSITIONS[transition]
        fields = {**write.fields, STATUS: status, UPDATED_AT: self._now(),
                  EXPIRES_AT: int(time.time()) + self._ttl_seconds}
        if transition in _WORKER and run is not None:
            if run.run_id is not None:
                fields[RUN_ID] = run.run_id
            if run.generation is not None:
                fields[GENERATION] = run.generation
        if transition is Transition.REDRIVE:
            fields[GENERATION] = generation
        names = {f"#{key}": key for key in (*fields, *write.remove, JOB_ID, STATUS, GENERATION, RUN_ID,
                                            ATTEMPTS)}
        values: dict[str, Any] = {f":{key}": value for key, value in fields.items()}
        update = "SET " + ", ".join(f"#{key} = :{key}" for key in fields)
        if write.remove:
            update += " REMOVE " + ", ".join(f"#{key}" for key in write.remove)
        states = sorted(state for state in allowed if state is not NEW)
        placeholders = [f":from{index}" for index in range(len(states))]
        values.update(zip(placeholders, states, strict=True))
        in_states = f"#{STATUS} IN ({', '.join(placeholders)})"
        condition = _condition(transition, run, attempt, generation, in_states, values)
        # DynamoDB refuses names and values an expression does not use.
        used = set(re.findall(r"[#:][A-Za-z0-9_]+", f"{update} {condition}"))
        names = {name: key for name, key in names.items() if name in used}
        values = {name: value for name, value in values.items() if name in used}
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

    def mark_submitted(self, job_id: str, job_type: str, tier: str, submitted_at: str,
                       owner: str | None = None) -> bool:
        """The API's record, written before the send; False if the job id already has one."""
        fields = {TYPE: job_type, TIER: tier, ATTEMPTS: 0, SUBMITTED_AT: submitted_at}
        if owner is not None:
            fields[OWNER] = owner
        return self._apply(job_id, Transition.SUBMIT, _Write(fields))

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

    def mark_running(self, job_id: str, job_type: str, attempt: int, run: Run | None = None) -> bool:
        return self._apply(job_id, Transition.START, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, STARTED_AT: self._now()}), run, attempt)

    def mark_failed(self, job_id: str, job_type: str, attempt: int, error: str,
                    run: Run | None = None) -> bool:
        """An attempt failed and another will follow (or, for run-one, the Batch job failed)."""
        return self._apply(job_id, Transition.FAIL, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, LAST_ERROR: error[:ERROR_LIMIT]}),
            run, attempt)

    def mark_succeeded(self, job_id: str, job_type: str, attempt: int, run: Run | None = None,
                       result: Mapping[str, Any] | None = None) -> bool:
        """``result``: where the job's result was stored (worker.results), recorded in the same write."""
        fields = {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, FINISHED_AT: self._now()}
        if result:
            fields[RESULT] = dict(result)
        return self._apply(job_id, Transition.SUCCEED, _Write(fields), run, attempt)

    def mark_dead_lettered(self, job_id: str, job_type: str, attempt: int, error: str,
                           run: Run | None = None) -> bool:
        return self._apply(job_id, Transition.DEAD_LETTER, _Write(
            {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt, LAST_ERROR: error[:ERROR_LIMIT],
             FINISHED_AT: self._now()}), run, attempt)

    def mark_released(self, job_id: str, job_type: str, attempt: int, run: Run | None = None,
                      error: str | None = None) -> bool:
        """The running attempt was handed back and the job waits to run again: queued. A draining
        worker hands its message back; run-one, a transient failure Batch retries, with ``error``
        (lastError). Refused once a later attempt (or another run) wrote: its state is newer."""
        fields: dict[str, Any] = {TYPE: job_type, TIER: self._tier, ATTEMPTS: attempt}
        if error is not None:
            fields[LAST_ERROR] = error[:ERROR_LIMIT]
        return self._apply(job_id, Transition.RELEASE, _Write(fields), run, attempt)

    def mark_redriven(self, job_id: str, generation: int) -> bool:
        """The redrive sent the job's copy back as redrive ``generation`` (the copy's
        jobfleet.redriveCount): queued again, attempt fields cleared, TTL restarted. Refused once any
        write of that generation landed (a worker already picked the copy up: its state is newer)."""
        return self._apply(job_id, Transition.REDRIVE, _Write(
            {ATTEMPTS: 0}, remove=(STARTED_AT, FINISHED_AT, LAST_ERROR, RUN_ID)), generation=generation)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self._table.get_item(Key={JOB_ID: job_id}, ConsistentRead=True).get("Item")


def _condition(transition: Transition, run: Run | None, attempt: int, generation: int, in_states: str,
               values: dict[str, Any]) -> str:
    """`decide` as a DynamoDB condition (the placeholders of the written fields are reused)."""
    new = f"attribute_not_exists(#{JOB_ID})"
    if transition is Transition.SUBMIT:
        return new
    if transition is Transition.REDRIVE:
        return f"{in_states} AND (attribute_not_exists(#{GENERATION}) OR #{GENERATION} < :{GENERATION})"
    run = run or Run()
    forward = f"(attribute_not_exists(#{ATTEMPTS}) OR #{ATTEMPTS} <= :{ATTEMPTS})"
    same_run = [in_states, forward]
    takeover: list[str] = []
    if run.run_id is not None:
        same_run.append(f"(attribute_not_exists(#{RUN_ID}) OR #{RUN_ID} = :{RUN_ID})")
        if transition is Transition.START:
            values[":succeeded"] = SUCCEEDED
            takeover = [f"attribute_exists(#{RUN_ID})", f"#{RUN_ID} <> :{RUN_ID}", f"#{STATUS} <> :succeeded"]
    options = [new]
    if run.generation is None:
        options += [" AND ".join(same_run), " AND ".join(takeover)]
    else:
        if run.generation == 0:
            same_generation = f"(attribute_not_exists(#{GENERATION}) OR #{GENERATION} = :{GENERATION})"
        else:
            same_generation = f"#{GENERATION} = :{GENERATION}"
            options.append(f"attribute_not_exists(#{GENERATION}) OR #{GENERATION} < :{GENERATION}")
        options.append(" AND ".join([same_generation, *same_run]))
        if takeover:
            options.append(" AND ".join([same_generation, *takeover]))
    return " OR ".join(f"({option})" for option in options if option)


def _boto3_dynamodb() -> DynamoDBServiceResource:
    import boto3  # only runtimes that track status pay for the resource API

    return boto3.resource("dynamodb")


def status_store_from_env(env: Mapping[str, str],
                          make_dynamodb: Callable[[], DynamoDBServiceResource] = _boto3_dynamodb
                          ) -> JobStatusStore | None:
    """The store a runtime writes through, from STATUS_TABLE / STATUS_TTL_DAYS / TIER; None when off.
    ``make_dynamodb`` is called only when a table is set, so a runtime without one needs no AWS region."""
    table_name, ttl_days = names.status_table_settings(env, DEFAULT_TTL_DAYS)
    if table_name is None:
        return None
    return JobStatusStore(make_dynamodb().Table(table_name), env.get(names.TIER) or "default", ttl_days)
