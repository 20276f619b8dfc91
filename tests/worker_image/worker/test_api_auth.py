"""Bearer-token auth of the job API with real tokens: the local issuer's RSA key signs them
(jobfleet_tools.issuer), its JWKS is served over HTTP on 127.0.0.1, SQS and DynamoDB are the moto server."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from worker.api import ApiSettings, create_app
from worker.auth import AuthSettings

from jobfleet_contract.environment import ApiAuth, ConfigError, api_environment, auth_scopes
from jobfleet_tools.issuer import LocalIssuer
from jobfleet_tools.local.processes import free_port
from tests.worker_image.conftest import served_api

AUDIENCE = "https://jobs.example.test"
SCOPES = {"submit": f"{AUDIENCE}/submit", "read": f"{AUDIENCE}/read", "readAny": f"{AUDIENCE}/read-any"}
JOB = {"type": "report", "payload": {"n": 1}}


class Issuer(LocalIssuer):
    """The shared local issuer (jobfleet_tools.issuer); tokens for AUDIENCE by default, scopes by name."""

    def token(self, client: str = "client-a", scopes: Iterable[str] = ("submit", "read"), *,
              aud: str | None = AUDIENCE, **claims: Any) -> str:
        return super().token(client, [SCOPES.get(s, s) for s in scopes], aud=aud, **claims)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    yield running
    running.close()


@pytest.fixture()
def settings(sqs, jobs_table, issuer):
    queue = sqs.create_queue(QueueName=f"auth-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    table = jobs_table.name

    def make(rate: float = 0.0) -> ApiSettings:
        auth = AuthSettings.from_env({
            "AUTH_MODE": "jwt", "AUTH_ISSUER": issuer.url, "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_SCOPES": json.dumps(SCOPES), "RATE_LIMIT_PER_CLIENT": str(rate)})
        return ApiSettings({"standard": queue}, {"report": "standard"}, table, auth=auth)

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_a_valid_token_nothing_is_submitted_or_read(settings, issuer, sqs):
    api = TestClient(create_app(settings()))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "no header": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
        "garbage": bearer("not.a.jwt"),
        "foreign key": bearer(issuer.token(key=other_key)),
        "wrong issuer": bearer(issuer.token(iss="https://evil.example")),
        "expired": bearer(issuer.token(expires_in=-120)),
        "wrong audience": bearer(issuer.token(aud="https://other-api.example")),
        "unknown kid": bearer(issuer.token(kid="nope")),
    }
    for what, headers in refused.items():
        response = api.post("/jobs", json=JOB, headers=headers)
        assert response.status_code == 401, (what, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), what
        assert response.json()["reason"], what
        assert api.get("/jobs/anything", headers=headers).status_code == 401, what
    queue = settings().tier_queues["standard"]
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []


def test_scopes_separate_submitting_from_reading(settings, issuer):
    api = TestClient(create_app(settings()))
    submit_only = bearer(issuer.token(scopes=("submit",)))
    read_only = bearer(issuer.token(scopes=("read",)))

    accepted = api.post("/jobs", json=JOB, headers=submit_only)
    assert accepted.status_code == 202, accepted.text
    assert api.get(accepted.json()["statusUrl"], headers=submit_only).status_code == 403
    assert api.post("/jobs", json=JOB, headers=read_only).status_code == 403
    assert api.get(accepted.json()["statusUrl"], headers=read_only).json()["status"] == "queued"


def test_a_job_is_readable_by_its_client_or_the_read_any_scope_only(settings, issuer):
    api = TestClient(create_app(settings()))
    job_url = api.post("/jobs", json=JOB, headers=bearer(issuer.token("client-a"))).json()["statusUrl"]

    assert api.get(job_url, headers=bearer(issuer.token("client-a"))).status_code == 200
    # Another client's job looks exactly like a job that does not exist.
    assert api.get(job_url, headers=bearer(issuer.token("client-b"))).json()["error"] == "not-found"
    operator = bearer(issuer.token("operator", scopes=("read", "readAny")))
    assert api.get(job_url, headers=operator).status_code == 200


def test_cognito_access_tokens_without_aud_are_checked_by_their_resource_server_scopes(settings, issuer):
    api = TestClient(create_app(settings()))
    assert api.post("/jobs", json=JOB, headers=bearer(issuer.token(aud=None))).status_code == 202
    foreign = issuer.token(aud=None, scopes=("https://other-api.example/submit",))
    assert api.post("/jobs", json=JOB, headers=bearer(foreign)).status_code == 401


def test_idempotency_keys_belong_to_their_client(settings, issuer):
    api = TestClient(create_app(settings()))
    request = {**JOB, "idempotencyKey": "order-1"}
    first = api.post("/jobs", json=request, headers=bearer(issuer.token("client-a"))).json()["jobId"]
    other = api.post("/jobs", json=request, headers=bearer(issuer.token("client-b"))).json()["jobId"]
    again = api.post("/jobs", json=request, headers=bearer(issuer.token("client-a"))).json()["jobId"]
    assert first == again != other


def test_the_per_client_rate_limit_answers_429_to_that_client_only(settings, issuer):
    api = TestClient(create_app(settings(rate=1)))
    busy, quiet = bearer(issuer.token("busy")), bearer(issuer.token("quiet"))
    assert api.post("/jobs", json=JOB, headers=busy).status_code == 202
    limited = api.post("/jobs", json=JOB, headers=busy)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate-limited" and int(limited.headers["retry-after"]) >= 1
    assert api.post("/jobs", json=JOB, headers=quiet).status_code == 202


def test_the_issuer_keys_are_fetched_once_and_cached(settings, issuer):
    api = TestClient(create_app(settings()))
    before = issuer.jwks_requests
    token = bearer(issuer.token())
    for _ in range(5):
        assert api.post("/jobs", json=JOB, headers=token).status_code == 202
    assert issuer.jwks_requests - before == 1


def test_jwt_mode_needs_issuer_audience_and_all_scopes():
    with pytest.raises(ConfigError, match="AUTH_ISSUER, AUTH_AUDIENCE"):
        AuthSettings.from_env({"AUTH_MODE": "jwt"})
    with pytest.raises(ConfigError, match="AUTH_SCOPES must name exactly"):
        AuthSettings.from_env({"AUTH_MODE": "jwt", "AUTH_ISSUER": "https://i", "AUTH_AUDIENCE": "a",
                               "AUTH_SCOPES": json.dumps({"submit": "a/submit"})})
    with pytest.raises(ConfigError, match="AUTH_MODE must be jwt or none"):
        AuthSettings.from_env({"AUTH_MODE": "basic"})
    assert AuthSettings.from_env({"AUTH_ISSUER": "https://i/"}).jwks_url == "https://i/.well-known/jwks.json"


def test_the_served_api_with_local_modes_auth_settings_checks_tokens_over_http(issuer, moto_endpoint, sqs,
                                                                                tmp_path):
    """`python -m worker api` as a real process, with the environment local mode gives it for
    --auth-issuer/--auth-audience (the contract's api_environment)."""
    queue = sqs.create_queue(QueueName=f"auth-served-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    env = {**os.environ, **api_environment(
        tier_queue_urls={"standard": queue}, job_types={"report": "standard"}, status_table="",
        status_ttl_days=1, max_payload_bytes=65536, tier_max_payload_bytes={}, port=free_port(),
        auth=ApiAuth("jwt", issuer.url, AUDIENCE, auth_scopes(AUDIENCE), 0)), "API_HOST": "127.0.0.1"}
    with served_api(env, tmp_path) as url:
        assert httpx.post(f"{url}/jobs", json=JOB).status_code == 401
        accepted = httpx.post(f"{url}/jobs", json=JOB, headers=bearer(issuer.token()))
        assert accepted.status_code == 202, accepted.text
