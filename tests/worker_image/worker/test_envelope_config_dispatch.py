"""Envelope validation, configuration from the environment, and the handler registry."""

from __future__ import annotations

import json

import pytest
from worker import PermanentError, job
from worker.config import WorkerConfig
from worker.dispatch import handler_for, registered_types
from worker.errors import UnknownJobType

from jobfleet_contract.envelope import parse_envelope
from jobfleet_contract.environment import ConfigError
from jobfleet_contract.errors import InvalidEnvelope

GOOD = {"jobId": "j-1", "type": "report", "payload": {"rows": 3}, "submittedAt": "2024-05-01T12:00:00.123Z"}


def test_valid_envelope_round_trips():
    envelope = parse_envelope(json.dumps(GOOD))
    assert (envelope.job_id, envelope.job_type, envelope.payload) == ("j-1", "report", {"rows": 3})
    assert json.loads(envelope.to_json()) == GOOD


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"jobId": ""}, "jobId"),
        ({"jobId": 7}, "jobId"),
        ({"type": None}, "type"),
        ({"payload": "text"}, "payload"),
        ({"submittedAt": "yesterday"}, "submittedAt"),
    ],
)
def test_invalid_envelopes_are_permanent_and_name_the_field(change, fragment):
    with pytest.raises(InvalidEnvelope, match=fragment) as info:
        parse_envelope(json.dumps({**GOOD, **change}))
    assert isinstance(info.value, PermanentError)


@pytest.mark.parametrize("body", ["", "{", "[1, 2]", "null"])
def test_non_object_bodies_are_invalid(body):
    with pytest.raises(InvalidEnvelope):
        parse_envelope(body)


def test_registry_and_unknown_type():
    @job("test.registry")
    def handler(payload, ctx):
        return None

    assert handler_for("test.registry") is handler
    assert "test.registry" in registered_types()
    with pytest.raises(UnknownJobType):
        handler_for("test.never-registered")
    with pytest.raises(ValueError, match="already has a handler"):
        job("test.registry")(lambda payload, ctx: None)


def test_examples_register_the_three_tiers_job_types():
    import worker.examples  # noqa: F401

    assert {"onboarding", "report", "analysis"} <= set(registered_types())


BASE = {"QUEUE_URL": "https://sqs/q", "DLQ_URL": "https://sqs/q-dlq"}


def test_config_defaults_and_overrides():
    config = WorkerConfig.from_env(BASE)
    assert (config.concurrency, config.max_receive_count, config.memory_high_water) == (4, 5, 0.8)
    assert config.handler_modules == ("worker.examples",) and config.stop_timeout_seconds == 100
    assert config.timeout_for("report", queue_visibility_timeout=900) == 900  # default: visibility timeout

    config = WorkerConfig.from_env(
        {
            **BASE,
            "WORKER_CONCURRENCY": "16",
            "JOB_MAX_SECONDS": "600",
            "JOB_TIMEOUTS": '{"report": 120}',
            "WORKER_HANDLERS": "a.b, c",
            "WORKER_ISOLATION": "process",
            "WORKER_RECYCLE_RSS_MIB": "512",
            "WORKER_ID": "w-7",
        }
    )
    assert config.concurrency == 16 and config.handler_modules == ("a.b", "c")
    assert config.timeout_for("report", 900) == 120 and config.timeout_for("analysis", 900) == 600
    assert config.isolation == "process" and config.recycle_rss_bytes == 512 * 1024 * 1024
    assert config.worker_id == "w-7"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "QUEUE_URL"),
        ({**BASE, "WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY=0"),
        ({**BASE, "WORKER_CONCURRENCY": "many"}, "WORKER_CONCURRENCY"),
        ({**BASE, "WORKER_MEMORY_LOW_WATER": "0.9"}, "LOW_WATER"),
        ({**BASE, "JOB_TIMEOUTS": "[1]"}, "JOB_TIMEOUTS"),
        ({**BASE, "JOB_TIMEOUTS": '{"a": 50000}'}, "JOB_TIMEOUTS"),
        ({**BASE, "WORKER_ISOLATION": "fiber"}, "WORKER_ISOLATION"),
    ],
)
def test_bad_config_fails_naming_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        WorkerConfig.from_env(env)


def test_a_batch_failure_record_moved_back_as_is_runs_its_original_envelope():
    record = {"envelope": json.dumps(GOOD), "failure": {"errorType": "BatchJobFailed", "reason": "x"}}
    assert parse_envelope(json.dumps(record)) == parse_envelope(json.dumps(GOOD))
    # Wrapped twice (failed again after such a move): still the original.
    twice = {"envelope": json.dumps(record), "failure": {"errorType": "BatchJobFailed"}}
    assert parse_envelope(json.dumps(twice)).job_id == GOOD["jobId"]
