"""Per-job-type settings from the configuration (JOB_ISOLATION, JOB_BREAKERS) reach the worker."""

from __future__ import annotations

import os

import pytest
from worker.config import ConfigError, WorkerConfig
from worker.policy import BreakerState, CircuitBreaker

from tests.worker_image.conftest import send_job, wait_for

BASE = {"QUEUE_URL": "q", "DLQ_URL": "d"}


def test_per_type_breaker_thresholds_and_cooldowns():
    breaker = CircuitBreaker(5, 60, {"partner.sync": (2, 10.0)})
    assert not breaker.record_failure("partner.sync", now=0)
    assert breaker.record_failure("partner.sync", now=1)  # its own threshold: 2
    for now in range(4):
        assert not breaker.record_failure("report", now=now)  # the default threshold: 5
    assert breaker.retry_after("partner.sync", 5) == 6.0  # its own cooldown: 10 s from t=1
    assert breaker.state("partner.sync", 11) is BreakerState.HALF_OPEN


def test_config_reads_job_isolation_and_breakers():
    breakers = '{"partner.sync": {"failures": 3, "cooldownSeconds": 30}}'
    config = WorkerConfig.from_env({**BASE, "JOB_ISOLATION": '{"invoice.render": "process"}',
                                    "JOB_BREAKERS": breakers})
    assert config.job_isolation == {"invoice.render": "process"}
    assert config.job_breakers == {"partner.sync": (3, 30.0)}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("JOB_ISOLATION", '{"a": "container"}', 'JOB_ISOLATION must be a JSON object of job type -> "thread"'),
    ("JOB_ISOLATION", "[1]", "JOB_ISOLATION must be a JSON object"),
    ("JOB_BREAKERS", '{"a": {"failures": 0, "cooldownSeconds": 5}}', "JOB_BREAKERS['a'] must be"),
    ("JOB_BREAKERS", '{"a": {"failures": 2}}', "JOB_BREAKERS['a'] must be"),
    ("JOB_BREAKERS", "{", "JOB_BREAKERS is not JSON"),
])
def test_config_refuses_bad_per_type_settings(name, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        WorkerConfig.from_env({**BASE, name: value})


def test_a_process_isolated_type_runs_in_a_child_while_others_run_in_threads(
        make_queues, start_worker, sqs, tmp_path):
    queues = make_queues()
    worker = start_worker(queues, job_isolation={"test.pid": "process"})
    isolated = send_job(sqs, queues.url, "test.pid", {"recordDir": str(tmp_path)})
    threaded = send_job(sqs, queues.url, "test.sleep", {"recordDir": str(tmp_path), "seconds": 0})
    wait_for(lambda: len(worker.outcomes("succeeded")) == 2, 60)
    assert worker.stop() == 0
    pids = {path.name.split("--")[1]: int(path.name.split("--")[3]) for path in tmp_path.iterdir()
            if path.name.startswith("start--")}
    assert pids[threaded] == os.getpid() and pids[isolated] != os.getpid()
