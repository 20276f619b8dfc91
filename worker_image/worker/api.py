"""Reference job API: ``python -m worker api`` (uvicorn serving ``worker.api:app`` on 0.0.0.0:$PORT).

``POST /jobs`` validates a job, sends the envelope ``{"jobId", "type", "payload", "submittedAt"}`` to its
tier's queue and answers 202 ``{jobId, tier, statusUrl}``; ``GET /jobs/{jobId}`` reads the job status
table the workers keep; ``GET /healthz``; the OpenAPI document is at ``/openapi.json``.

Configuration (the CDK compute stack sets these on the API container):

- ``TIER_QUEUES``: JSON ``{tier: queueUrl}``; ``JOB_TYPES``: JSON ``{jobType: tier}``;
- ``STATUS_TABLE``: DynamoDB table (key ``jobId``, TTL ``expiresAt``); optional (status lookups answer
  501 and idempotency keys are remembered in this process only when it is unset);
- ``MAX_PAYLOAD_BYTES``: largest serialized payload accepted (default 65536);
- ``TIER_MAX_PAYLOAD_BYTES`` (optional): JSON ``{tier: bytes}``, tighter limits of some tiers (the batch
  tier: AWS Batch's SubmitJob request carries the envelope and is capped at 30 KiB);
- ``STATUS_TTL_DAYS`` (optional, default 30, as for the workers): how long status records live.

Rules the API keeps:

- Never 202 for a job that was not queued: any SQS failure answers 503 with ``Retry-After``; the status
  record written just before the send is removed again and the idempotency key is released.
- The status record (``queued``) is written *before* the send, so a worker that finishes the job within
  milliseconds can never be overwritten by a late ``queued`` write.
- Idempotency: the same ``idempotencyKey`` within 24 h returns the first request's jobId and sends
  nothing. In DynamoDB the key is an item ``jobId = "idem#<key>"`` claimed with a conditional put. A
  claim whose send is still in flight answers 409 (retry shortly); a claim abandoned by a crashed API
  task can be taken over after ``PENDING_CLAIM_SECONDS``. The same key with a different type or payload
  answers 422; "the same payload" is canonical (keys sorted), so key order does not matter.
- Request bodies are capped at twice the payload limit plus slack, chunked ones included: the body is
  counted as it arrives and the request answered 413 (connection closed) once it crosses the cap.
- Models: Python names in code, camelCase on the wire through an alias generator; every handler
  returns its declared response model, which FastAPI validates on the way out.
- Every error is JSON ``{"error": <code>, "reason": <text>}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobfleet_contract import environment as names
from jobfleet_contract.envelope import Envelope
from jobfleet_contract.environment import ConfigError, env_json_object, env_number
from jobfleet_contract.status import DEFAULT_TTL_DAYS, OWNER, STATES, JobState, JobStatusStore
from jobfleet_contract.timestamps import iso_now
from worker.auth import ANONYMOUS, Authenticator, AuthError, AuthSettings, Caller, ClientRateLimit
from worker.wake import ServiceWaker

log = logging.getLogger("worker.api")

DEFAULT_MAX_PAYLOAD_BYTES = 65536
MAX_PAYLOAD_LIMIT = 1024 * 1024  # SQS's largest message
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
PENDING_CLAIM_SECONDS = 30  # a claim not confirmed within this long was abandoned (API task died)
RETRY_AFTER_SECONDS = 5
IDEMPOTENCY_PREFIX = "idem#"
# Request bodies larger than this are refused before parsing (payload limit x2 for whitespace/escapes).
BODY_SLACK_BYTES = 16384
AWS_ERRORS = (BotoCoreError, ClientError)

# --- configuration ---------------------------------------------------------------------------------------


def _string_map(env: Mapping[str, str], name: str) -> dict[str, str]:
    data = env_json_object(env, name)
    if not data or not all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in data.items()):
        raise ConfigError(f"{name} must be a non-empty JSON object of strings to strings")
    return data


@dataclass(frozen=True)
class ApiSettings:
    tier_queues: dict[str, str]
    job_types: dict[str, str]
    status_table: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    status_ttl_days: float = DEFAULT_TTL_DAYS
    # Tighter limits of some tiers: AWS Batch's SubmitJob carries the envelope in 30 KiB.
    tier_max_payload_bytes: dict[str, int] = field(default_factory=dict)
    auth: AuthSettings = field(default_factory=AuthSettings)

    def payload_limit(self, tier: str) -> int:
        return min(self.max_payload_bytes, self.tier_max_payload_bytes.get(tier, self.max_payload_bytes))

    def __post_init__(self) -> None:
        missing = sorted({tier for tier in self.job_types.values() if tier not in self.tier_queues})
        if missing:
            raise ConfigError(
                f"JOB_TYPES routes to tier(s) without a queue in TIER_QUEUES: {', '.join(missing)}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiSettings:
        status_table, status_ttl_days = names.status_table_settings(env, DEFAULT_TTL_DAYS)
        return cls(
            tier_queues=_string_map(env, names.TIER_QUEUES),
            job_types=_string_map(env, names.JOB_TYPES),
            status_table=status_table,
            max_payload_bytes=env_number(
                env, names.MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, minimum=1, maximum=MAX_PAYLOAD_LIMIT,
                integer=True,
            ),
            status_ttl_days=status_ttl_days,
            tier_max_payload_bytes=_tier_limits(env, names.TIER_MAX_PAYLOAD_BYTES),
            auth=AuthSettings.from_env(env),
        )


def _tier_limits(env: Mapping[str, str], name: str) -> dict[str, int]:
    """Optional JSON object tier -> positive integer byte limit."""
    data = env_json_object(env, name, required=False)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in data.values()):
        raise ConfigError(f"{name} must be a JSON object of tier names to positive integers")
    return data


# --- request and response models ---------------------------------------------------------------------------


class WireModel(BaseModel):
    """Python names in code, camelCase on the wire (the alias generator spells every field)."""

    model_config = ConfigDict(alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True,
                              validate_by_alias=True)


class JobRequest(WireModel):
    # Only the wire names are accepted in a request: {"idempotency_key": ...} is an unknown field.
    model_config = ConfigDict(extra="forbid", validate_by_name=False)

    type: str = Field(description="Job type; decides the tier (queue) the job goes to.")
    payload: dict[str, Any] = Field(description="Handler input: a JSON object.")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Repeat a submission safely: within 24 h the same key returns the same jobId.",
    )


class JobAccepted(WireModel):
    job_id: str
    tier: str
    status_url: str


class JobStatus(WireModel):
    job_id: str
    status: JobState
    type: str | None = None
    tier: str | None = None
    attempts: int = Field(default=0, ge=0)
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    last_error: str | None = None


class ErrorBody(WireModel):
    error: str = Field(description="Machine-readable error code.")
    reason: str = Field(description="What was wrong, for a human.")


class Health(WireModel):
    status: Literal["ok"]
    tiers: list[str]


def error_response(status: int, error: str, reason: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, reason=reason).model_dump(), status, headers=headers)


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.headers = status, error, reason, headers or {}


def _unavailable(what: str, exc: Exception, consequence: str = "the job was not accepted") -> ApiError:
    log.warning("dependency unavailable", extra={"dependency": what, "error": str(exc)})
    return ApiError(
        503,
        "unavailable",
        f"{what} is unreachable or failing ({type(exc).__name__}); {consequence}, retry later",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# --- status and idempotency stores ----------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """An idempotency record: the job a key stands for, and whether its send completed."""

    job_id: str
    tier: str
    fingerprint: str
    sent: bool


class DynamoIdempotency:
    """Idempotency claims, kept in the status table under their own key prefix."""

    def __init__(self, table) -> None:
        self._table = table

    def claim(self, key: str, job_id: str, tier: str, fingerprint: str) -> Claim | None:
        """Claim ``key`` for ``job_id``; None when claimed, else the live claim that holds the key."""
        item_key = IDEMPOTENCY_PREFIX + key
        for _ in range(3):
            now = int(time.time())
            try:
                self._table.put_item(
                    Item={
                        "jobId": item_key,
                        "targetJobId": job_id,
                        "tier": tier,
                        "fingerprint": fingerprint,
                        "claimState": "pending",
                        "pendingUntil": now + PENDING_CLAIM_SECONDS,
                        "expiresAt": now + IDEMPOTENCY_WINDOW_SECONDS,
                    },
                    # DynamoDB's TTL deletes lazily, so an expired claim counts as absent.
                    ConditionExpression="attribute_not_exists(jobId) OR expiresAt < :now "
                    "OR (claimState = :pending AND pendingUntil < :now)",
                    ExpressionAttributeValues={":now": now, ":pending": "pending"},
                )
                return None
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            item = self._table.get_item(Key={"jobId": item_key}, ConsistentRead=True).get("Item")
            if item is not None:
                return Claim(
                    str(item["targetJobId"]), str(item["tier"]), str(item["fingerprint"]),
                    item.get("claimState") == "sent",
                )
        raise ApiError(409, "submission-in-progress", "this idempotencyKey is changing hands; retry shortly",
                       {"Retry-After": "1"})

    def confirm(self, key: str, job_id: str) -> None:
        self._table.update_item(
            Key={"jobId": IDEMPOTENCY_PREFIX + key},
            UpdateExpression="SET claimState = :sent REMOVE pendingUntil",
            ConditionExpression="targetJobId = :job",
            ExpressionAttributeValues={":sent": "sent", ":job": job_id},
        )

    def release(self, key: str, job_id: str) -> None:
        try:
            self._table.delete_item(
                Key={"jobId": IDEMPOTENCY_PREFIX + key},
                ConditionExpression="targetJobId = :job",
                ExpressionAttributeValues={":job": job_id},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise


class MemoryIdempotency:
    """Idempotency without STATUS_TABLE: remembered in this process only (one API task, local runs).

    Several API tasks behind a load balancer do not share it; production sets STATUS_TABLE.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, tuple[Claim, float, float]] = {}  # key -> (claim, expires, pending until)

    def claim(self, key: str, job_id: str, tier: str, fingerprint: str) -> Claim | None:
        now = time.time()
        with self._lock:
            existing = self._claims.get(key)
            if existing is not None:
                claim, expires, pending_until = existing
                if expires > now and (claim.sent or pending_until > now):
                    return claim
            self._claims[key] = (
                Claim(job_id, tier, fingerprint, False),
                now + IDEMPOTENCY_WINDOW_SECONDS,
                now + PENDING_CLAIM_SECONDS,
            )
            # Bounded memory: expired claims go whenever a new one is made.
            for stale in [k for k, (_, exp, _) in self._claims.items() if exp <= now]:
                del self._claims[stale]
            return None

    def confirm(self, key: str, job_id: str) -> None:
        with self._lock:
            claim, expires, _ = self._claims[key]
            if claim.job_id == job_id:
                self._claims[key] = (Claim(claim.job_id, claim.tier, claim.fingerprint, True), expires, 0.0)

    def release(self, key: str, job_id: str) -> None:
        with self._lock:
            existing = self._claims.get(key)
            if existing is not None and existing[0].job_id == job_id:
                del self._claims[key]


def _aws_config() -> Config:
    # Fail fast: a client waiting on a dead endpoint must get its 503 in seconds, not minutes.
    return Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "max_attempts": 2})


# --- the app ---------------------------------------------------------------------------------------------


def _validation_reason(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        why = detail.get("ctx", {}).get("error", "")
        return 400, "malformed-json", f"request body is not valid JSON: {why}"
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return 422, "invalid-request", "; ".join(parts)


def _fingerprint(job_type: str, payload: dict[str, Any]) -> str:
    """Canonical: the same payload with its keys in another order is the same request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False)
    return hashlib.sha256(f"{job_type}\n{canonical}".encode()).hexdigest()


def _status_from_item(item: dict) -> JobStatus:
    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value)

    attempts = item.get("attempts", 0)
    return JobStatus(
        job_id=str(item["jobId"]),
        status=item["status"],
        type=text("type"),
        tier=text("tier"),
        attempts=int(attempts) if isinstance(attempts, int | Decimal) else 0,
        submitted_at=text("submittedAt"),
        started_at=text("startedAt"),
        finished_at=text("finishedAt"),
        updated_at=text("updatedAt"),
        last_error=text("lastError"),
    )


# The rest of a refused body is not read: the server closes the connection after answering
# (uvicorn would otherwise keep draining it for a keep-alive request).
CLOSE = {"Connection": "close"}


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes", headers=CLOSE)


class BodyLimit:
    """Refuses request bodies over `limit` bytes, chunked ones included, without reading past the limit.

    A Content-Length over the limit is answered before the body is read; otherwise the bytes are
    counted as the app receives them and the receive that crosses the limit raises BodyTooLarge
    (a 413 through the app's HTTP error handler), so at most `limit` + one chunk is ever held.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:
            response = error_response(413, "payload-too-large",
                                      f"request body of {length} bytes exceeds {self.limit}", CLOSE)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody}
                                            for code in (400, 401, 403, 409, 413, 422, 429, 503)}


def create_app(settings: ApiSettings, *, sqs_client=None, dynamodb=None,
               waker: ServiceWaker | None = None) -> FastAPI:
    """Build the API for ``settings``; clients default to boto3's (AWS_REGION / AWS_ENDPOINT_URL*).

    ``waker`` (worker.wake) starts the first task of a tier at zero tasks when a job is queued for it.
    """
    sqs = sqs_client or boto3.client("sqs", config=_aws_config())
    store: JobStatusStore | None = None
    idempotency: DynamoIdempotency | MemoryIdempotency
    if settings.status_table:
        resource = dynamodb or boto3.resource("dynamodb", config=_aws_config())
        table = resource.Table(settings.status_table)
        store = JobStatusStore(table, ttl_days=settings.status_ttl_days)
        idempotency = DynamoIdempotency(table)
    else:
        idempotency = MemoryIdempotency()
    body_limit = settings.max_payload_bytes * 2 + BODY_SLACK_BYTES
    authenticator = Authenticator(settings.auth)
    rate_limit = ClientRateLimit(settings.auth.rate_limit_per_client)

    def caller(request: Request) -> Caller:
        """The authenticated client of a /jobs request, within its rate limit."""
        try:
            who = authenticator.caller(request.headers.get("authorization"))
        except AuthError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="jobfleet"'} if exc.status == 401 else None
            raise ApiError(exc.status, exc.error, exc.reason, headers) from None
        wait = rate_limit.retry_after(who.client_id)
        if wait > 0:
            raise ApiError(429, "rate-limited", f"client {who.client_id[:100]!r} is over its request rate",
                           {"Retry-After": str(max(1, round(wait + 0.5)))})
        return who

    def require(who: Caller, scope: str) -> None:
        try:
            authenticator.require(who, scope)
        except AuthError as exc:
            raise ApiError(exc.status, exc.error, exc.reason) from None

    app = FastAPI(
        title="JobFleet job API",
        version="1.0.0",
        description="Submit jobs to their tier's queue and follow their status.",
    )
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.reason, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, error, reason = _validation_reason(exc)
        return error_response(status, error, reason)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
            exc.status_code, "http-error")
        return error_response(exc.status_code, error, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal", f"internal error ({type(exc).__name__})")

    app.add_middleware(BodyLimit, limit=body_limit)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        return Health(status="ok", tiers=sorted(settings.tier_queues))

    @app.post(
        "/jobs",
        status_code=202,
        response_model=JobAccepted,
        responses={**_ERRORS, 409: {"model": ErrorBody, "description": "same idempotencyKey in flight"}},
        tags=["jobs"],
    )
    # `caller` is local to this app, so it cannot be named in a (string) Annotated type.
    def submit_job(job: JobRequest, response: Response,
                   who: Caller = Depends(caller)) -> JobAccepted:  # noqa: B008
        require(who, "submit")
        tier = settings.job_types.get(job.type)
        if tier is None:
            raise ApiError(
                422, "unknown-job-type",
                f"unknown job type {job.type[:100]!r}; known: {', '.join(sorted(settings.job_types))}",
            )
        try:
            payload_json = json.dumps(job.payload, allow_nan=False)
        except (ValueError, RecursionError) as exc:
            raise ApiError(422, "invalid-payload", f"payload is not serializable as JSON: {exc}") from None
        size = len(payload_json.encode())
        limit = settings.payload_limit(tier)
        if size > limit:
            raise ApiError(
                413, "payload-too-large",
                f"payload is {size} bytes serialized; at most {limit} are accepted for {job.type!r} jobs",
            )
        job_id = str(uuid.uuid4())
        # Keys are per client: one client can neither replay nor block another's submission.
        key = job.idempotency_key
        if key is not None and who.client_id != ANONYMOUS:
            key = f"{who.client_id}:{key}"
        if key is not None:
            fingerprint = _fingerprint(job.type, job.payload)
            try:
                existing = idempotency.claim(key, job_id, tier, fingerprint)
            except AWS_ERRORS as exc:
                raise _unavailable("the status table", exc) from None
            if existing is not None:
                if existing.fingerprint != fingerprint:
                    raise ApiError(
                        422, "idempotency-key-reused",
                        "this idempotencyKey was used within 24 h for a different type or payload",
                    )
                if not existing.sent:
                    raise ApiError(
                        409, "submission-in-progress",
                        "a request with this idempotencyKey is still being queued; retry shortly",
                        {"Retry-After": "1"},
                    )
                return _accepted(response, existing.job_id, existing.tier, replayed=True)
        submitted_at = iso_now()
        try:
            if store is not None:
                try:
                    # A fresh uuid4 has no record yet, so the submit transition applies.
                    store.mark_submitted(job_id, job.type, tier, submitted_at, owner=who.client_id)
                except AWS_ERRORS as exc:
                    raise _unavailable("the status table", exc) from None
            body = Envelope(job_id, job.type, job.payload, submitted_at).to_json()
            try:
                sqs.send_message(QueueUrl=settings.tier_queues[tier], MessageBody=body)
            except AWS_ERRORS as exc:
                if store is not None:
                    _quietly(store.forget_submitted, job_id)
                raise _unavailable("SQS", exc) from None
        except ApiError:
            if key is not None:
                _quietly(idempotency.release, key, job_id)
            raise
        if key is not None:
            _quietly(idempotency.confirm, key, job_id)
        log.info("job queued", extra={"jobId": job_id, "type": job.type, "tier": tier})
        if waker is not None:
            waker.poke(tier)  # background, rate-limited; never fails the request
        return _accepted(response, job_id, tier, replayed=False)

    @app.get(
        "/jobs/{jobId}",
        response_model=JobStatus,
        responses={code: {"model": ErrorBody} for code in (401, 403, 404, 422, 429, 501, 503)},
        tags=["jobs"],
    )
    def job_status(job_id: Annotated[str, Path(alias="jobId", min_length=1, max_length=512)],
                   who: Caller = Depends(caller)) -> JobStatus:  # noqa: B008
        require(who, "read")
        if store is None:
            raise ApiError(501, "status-disabled", "job status tracking is off (STATUS_TABLE is not set)")
        if job_id.startswith(IDEMPOTENCY_PREFIX):
            raise ApiError(404, "not-found", f"no job {job_id[:100]!r}")
        try:
            item = store.get(job_id)
        except AWS_ERRORS as exc:
            raise _unavailable("the status table", exc, "the job's status cannot be read now") from None
        # Another client's job answers exactly like a missing one: its existence is not revealed.
        if (item is None or item.get("status") not in STATES
                or not authenticator.may_read(who, item.get(OWNER))):
            raise ApiError(404, "not-found", f"no job {job_id[:100]!r}")
        return _status_from_item(item)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            # Advertise the configured job types (validation stays in the handler, with its own reason).
            properties = schema["components"]["schemas"]["JobRequest"]["properties"]
            properties["type"]["enum"] = sorted(settings.job_types)
            properties["payload"]["description"] += (
                f" At most {settings.max_payload_bytes} bytes serialized as JSON (else 413)."
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented schema override
    return app


def _accepted(response: Response, job_id: str, tier: str, *, replayed: bool) -> JobAccepted:
    status_url = f"/jobs/{job_id}"
    response.headers["Location"] = status_url
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobAccepted(job_id=job_id, tier=tier, status_url=status_url)


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # cleanup after a failure must not hide the failure itself
        log.warning("cleanup failed", extra={"step": fn.__name__, "error": str(exc)})


_app: FastAPI | None = None
_app_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``worker.api:app`` (what ``python -m worker api`` serves), built from the environment on first use."""
    global _app
    if name != "app":
        raise AttributeError(name)
    with _app_lock:
        if _app is None:
            _app = create_app(ApiSettings.from_env(), waker=ServiceWaker.from_env())
    return _app
