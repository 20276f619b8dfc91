"""The simulator against queueing theory: fixed tasks, Poisson arrivals and exponential service
(M/M/c, c = tasks x concurrency) must reproduce Erlang C's steady-state waits.

Tolerance: the mean wait within 8 % and P(wait > 0) within 0.015 of the formula, over 200 000 jobs
after a 10 % warm-up. Over eight seeds the mean-wait error of these cases was centred on zero with a
spread of 1-3 % (waits at 80 % load are strongly autocorrelated) and P(wait > 0) within 0.008, so the
tolerance is about three standard errors: it fails on a modelling error (a slot used twice, a task
idle while messages wait, a job started late), not on noise. The seed is fixed: no flakiness.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from jobfleet_config.config import load_environment
from jobfleet_tools.capacity.model import ServicePolicy
from jobfleet_tools.capacity.simulate import simulate_service

JOBS = 200_000
WARM_UP = JOBS // 10
MEAN_WAIT_TOLERANCE = 0.08
P_WAIT_TOLERANCE = 0.015


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> tuple[float, float]:
    """(P(wait > 0), mean wait) of an M/M/c queue."""
    offered = arrival_rate / service_rate
    assert offered < servers, "unstable queue"
    top = offered ** servers / math.factorial(servers) * servers / (servers - offered)
    bottom = sum(offered ** k / math.factorial(k) for k in range(servers)) + top
    p_wait = top / bottom
    return p_wait, p_wait / (servers * service_rate - arrival_rate)


def fixed_policy(tasks: int, concurrency: int) -> ServicePolicy:
    config = load_environment("prod")
    policy = ServicePolicy.from_config(config, config.tier("standard"))
    return dataclasses.replace(policy, concurrency=concurrency).fixed(tasks)


@pytest.mark.parametrize(("tasks", "concurrency", "mean_seconds", "load"), [
    (1, 1, 1.0, 0.7),    # M/M/1
    (2, 2, 2.0, 0.8),    # 4 servers: 2 tasks x 2 jobs at a time
    (5, 2, 30.0, 0.8),   # 10 servers, the standard tier's job length
])
def test_fixed_tasks_match_erlang_c(tasks, concurrency, mean_seconds, load):
    servers = tasks * concurrency
    service_rate = 1 / mean_seconds
    arrival_rate = load * servers * service_rate
    rng = random.Random(1)
    arrivals, now = [], 0.0
    for _ in range(JOBS):
        now += rng.expovariate(arrival_rate)
        arrivals.append(now)
    lengths = [rng.expovariate(service_rate) for _ in range(JOBS)]

    result = simulate_service(fixed_policy(tasks, concurrency), arrivals, lengths,
                              horizon=arrivals[-1], rng=rng)

    waits = result.waits[WARM_UP:]
    p_wait, mean_wait = erlang_c(servers, arrival_rate, service_rate)
    measured_mean = sum(waits) / len(waits)
    measured_p = sum(1 for w in waits if w > 0) / len(waits)
    assert measured_mean == pytest.approx(mean_wait, rel=MEAN_WAIT_TOLERANCE)
    assert measured_p == pytest.approx(p_wait, abs=P_WAIT_TOLERANCE)
    assert result.peak_tasks == tasks


def test_erlang_c_formula_known_value():
    # M/M/1: P(wait) = rho, Wq = rho / (mu - lambda).
    p_wait, mean_wait = erlang_c(1, 0.5, 1.0)
    assert p_wait == pytest.approx(0.5)
    assert mean_wait == pytest.approx(1.0)
