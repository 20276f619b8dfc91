"""Wake from zero: the API raises a sleeping tier's service to one task, against moto's ECS server."""

from __future__ import annotations

import logging
import time
import uuid

import boto3
import pytest
from fastapi.testclient import TestClient
from worker.api import ApiSettings, create_app
from worker.wake import ServiceWaker

from jobfleet_contract.environment import ConfigError, parse_wake_services
from tests.worker_image.conftest import dead_endpoint, wait_for
from tests.worker_image.worker.test_api import JOB_TYPES, REGION


@pytest.fixture()
def settings(sqs) -> ApiSettings:
    suffix = uuid.uuid4().hex[:8]
    queues = {tier: sqs.create_queue(QueueName=f"wake-{tier}-{suffix}")["QueueUrl"]
              for tier in ("critical", "standard", "batch")}
    return ApiSettings(tier_queues=queues, job_types=JOB_TYPES)


@pytest.fixture()
def ecs(moto_endpoint):
    return boto3.client("ecs", region_name=REGION, endpoint_url=moto_endpoint)


def make_service(ecs, desired: int) -> tuple[str, str]:
    cluster = f"c-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=cluster)
    family = f"td-{uuid.uuid4().hex[:8]}"
    ecs.register_task_definition(family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                 cpu="256", memory="512",
                                 containerDefinitions=[{"name": "w", "image": "worker", "essential": True}])
    ecs.create_service(cluster=cluster, serviceName="standard-workers", taskDefinition=family,
                       desiredCount=desired, launchType="FARGATE")
    return cluster, "standard-workers"


def desired(ecs, cluster: str, service: str) -> int:
    return ecs.describe_services(cluster=cluster, services=[service])["services"][0]["desiredCount"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_post_to_a_sleeping_tier_sets_its_desired_count_to_one(settings, ecs):
    """Time from POST to the scale call, measured here (printed; the target is <= 5 s)."""
    cluster, service = make_service(ecs, desired=0)
    waker = ServiceWaker({"standard": (cluster, service)}, ecs)
    client = TestClient(create_app(settings, waker=waker), raise_server_exceptions=False)
    started = time.monotonic()
    response = client.post("/jobs", json={"type": "report", "payload": {"n": 1}})
    assert response.status_code == 202, response.text
    wait_for(lambda: desired(ecs, cluster, service) == 1, timeout=30)
    print(f"\nPOST -> desiredCount 1 in moto's ECS: {time.monotonic() - started:.3f} s")
    waker.close()


def test_a_running_tier_is_left_alone(settings, ecs):
    """Idempotent: a service that wants tasks already is never touched (no lowering to 1)."""
    cluster, service = make_service(ecs, desired=3)
    waker = ServiceWaker({"standard": (cluster, service)}, ecs)
    client = TestClient(create_app(settings, waker=waker), raise_server_exceptions=False)
    assert client.post("/jobs", json={"type": "report", "payload": {}}).status_code == 202
    waker.close()  # waits for the background check
    assert desired(ecs, cluster, service) == 3


def test_only_configured_tiers_are_checked_and_at_most_once_per_interval(ecs):
    cluster, service = make_service(ecs, desired=0)
    clock = Clock()
    waker = ServiceWaker({"standard": (cluster, service)}, ecs, interval_seconds=10, guard_seconds=0,
                         clock=clock)
    assert waker.poke("critical") is False  # always-on tier: not in WAKE_SERVICES
    assert waker.poke("standard") is True
    clock.now += 9.9
    assert waker.poke("standard") is False
    clock.now += 0.1
    wait_for(lambda: waker.poke("standard"), timeout=10)  # once the first check has finished
    waker.close()
    assert desired(ecs, cluster, service) == 1


def test_a_wake_undone_before_a_task_runs_is_repeated(ecs):
    """Target tracking may set the count back to 0 on data from before the job (moto reports no
    running task): the waker raises it again on its next check."""
    cluster, service = make_service(ecs, desired=0)
    waker = ServiceWaker({"standard": (cluster, service)}, ecs, interval_seconds=0.2, guard_seconds=30)
    assert waker.poke("standard") is True
    wait_for(lambda: desired(ecs, cluster, service) == 1, timeout=10)
    ecs.update_service(cluster=cluster, service=service, desiredCount=0)  # the stale scale-in
    wait_for(lambda: desired(ecs, cluster, service) == 1, timeout=10)
    assert waker.poke("standard") is False  # its guard is still running: no second one
    waker.close()


def test_ecs_unreachable_never_fails_the_submission(settings, caplog):
    unreachable = boto3.client("ecs", region_name=REGION, endpoint_url=dead_endpoint(),
                               config=boto3.session.Config(retries={"max_attempts": 1},
                                                           connect_timeout=1))
    waker = ServiceWaker({"standard": ("cluster", "service")}, unreachable)
    client = TestClient(create_app(settings, waker=waker), raise_server_exceptions=False)
    with caplog.at_level(logging.WARNING, logger="worker.wake"):
        assert client.post("/jobs", json={"type": "report", "payload": {}}).status_code == 202
        waker.close()
    assert any("wake-up call failed" in r.getMessage() for r in caplog.records)


def test_from_env_reads_services_and_interval(ecs):
    waker = ServiceWaker.from_env({"WAKE_SERVICES": '{"standard": {"cluster": "c", "service": "s"}}',
                                   "WAKE_INTERVAL_SECONDS": "3"},
                                  ecs_client=ecs)
    assert waker is not None and waker.poke("standard") is True
    waker.close()
    assert ServiceWaker.from_env({}, ecs_client=ecs) is None


@pytest.mark.parametrize(("raw", "names"), [
    ("not json", "WAKE_SERVICES is not JSON"),
    ('["standard"]', "JSON object"),
    ('{"standard": "c/s"}', "WAKE_SERVICES['standard']"),
    ('{"standard": {"cluster": "c"}}', '"service": "<service name>"'),
    ('{"standard": {"cluster": "", "service": "s"}}', "expected"),
])
def test_fails_on_bad_wake_services(raw, names):
    with pytest.raises(ConfigError) as info:
        parse_wake_services({"WAKE_SERVICES": raw})
    assert names in str(info.value)


def test_fails_on_bad_wake_interval(ecs):
    with pytest.raises(ConfigError, match="WAKE_INTERVAL_SECONDS"):
        ServiceWaker.from_env({"WAKE_SERVICES": '{"standard": {"cluster": "c", "service": "s"}}',
                               "WAKE_INTERVAL_SECONDS": "0"},
                              ecs_client=ecs)
