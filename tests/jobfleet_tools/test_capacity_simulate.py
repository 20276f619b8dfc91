"""The capacity simulator: traces, the wake-up paths, scaling, Batch retries, the CLI contract."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from jobfleet_config.config import load_environment
from jobfleet_tools.capacity import cli, simulate_cli
from jobfleet_tools.capacity.model import API_WAKE_SECONDS, SCALE_IN_MINUTES, BatchPolicy, ServicePolicy
from jobfleet_tools.capacity.simulate import (
    percent_adjustment,
    scale_in_percent,
    seconds_above,
    simulate,
    simulate_batch,
    simulate_service,
)
from jobfleet_tools.capacity.trace import TRACES_DIR, TraceError, load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prod():
    return load_environment("prod")


def _standard(prod, **changes) -> ServicePolicy:
    return dataclasses.replace(ServicePolicy.from_config(prod, prod.tier("standard")), **changes)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


# --- traces ----------------------------------------------------------------------------------

def test_committed_traces_load_for_every_environment():
    names = sorted(p.stem for p in TRACES_DIR.glob("*.csv"))
    assert names == ["nightly", "week", "weekday"]
    for env in ("dev", "staging", "prod"):
        config = load_environment(env)
        for name in names:
            trace = load(name, set(config.job_types))
            assert trace.jobs() > 0
            assert trace.job_types <= set(config.job_types)


def test_week_trace_has_hours_long_analyses():
    trace = load("week")
    long_ones = [r for r in trace.rows if r.job_type == "analysis" and (r.mean_seconds or 0) >= 3 * 3600]
    assert len(long_ones) >= 3


@pytest.mark.parametrize(("text", "names"), [
    ("minute,type,count\n0,report,1\n", "header"),
    ("minute,job_type,count\n-1,report,1\n", ":2: minute = '-1'"),
    ("minute,job_type,count\n0,report,many\n", ":2: count = 'many'"),
    ("minute,job_type,count\n0,thumbnail,1\n", ":2: job_type = 'thumbnail'"),
    ("minute,job_type,count,mean_seconds\n0,report,1,0\n", ":2: mean_seconds = '0'"),
    ("# only a comment\nminute,job_type,count\n", "no rows"),
])
def test_fails_on_bad_trace_naming_file_and_line(tmp_path, text, names):
    path = _write(tmp_path, text)
    with pytest.raises(TraceError) as info:
        load(str(path), {"report", "onboarding", "analysis"})
    assert str(path) in str(info.value)
    assert names in str(info.value)
    assert "\n" not in str(info.value)


# --- behaviour -------------------------------------------------------------------------------

def test_same_seed_same_result_other_seed_other_result(prod):
    trace = load("nightly")
    first = simulate(prod, trace, seed=3)
    again = simulate(prod, trace, seed=3)
    other = simulate(prod, trace, seed=4)
    assert [r.waits for r in first] == [r.waits for r in again]
    assert [r.waits for r in first] != [r.waits for r in other]


def test_api_wake_starts_a_sleeping_tier_within_the_task_start(prod):
    """One job at a tier at zero tasks: the API wake-up starts it after the task start only; the
    alarm path needs the minute to close, the metric lag and the alarm on top of that."""
    policy = _standard(prod, task_start_seconds=60)
    arrivals, lengths = [90.0], [30.0]
    by_api = simulate_service(policy, arrivals, lengths, horizon=600, rng=random.Random(1))
    by_alarm = simulate_service(dataclasses.replace(policy, api_wake=False), arrivals, lengths,
                                horizon=600, rng=random.Random(1))
    assert 1 + 60 * 0.75 <= by_api.waits[0] <= 1 + 60 * 1.25
    # 90 s is in minute 1: data point closes at 120 s, reaches the alarm at 180 s, task starts.
    assert by_alarm.waits[0] >= 180 - 90 + 60 * 0.75


def test_a_woken_tier_is_not_scaled_back_to_zero_after_an_idle_hour(prod):
    """After an idle hour, one API wake-up (no re-check) starts the job one task start later:
    no scale-in acts on the minutes from before the job (target tracking used to, cancelling the
    starting task), and the alarm path is slower."""
    policy = _standard(prod, task_start_seconds=60)
    at = 3600 + 30.0
    one_shot = dataclasses.replace(policy, api_wake_interval_seconds=10 * 3600)
    by_api = simulate_service(one_shot, [at], [30.0], horizon=at + 60, rng=random.Random(1))
    by_alarm = simulate_service(dataclasses.replace(policy, api_wake=False), [at], [30.0],
                                horizon=at + 60, rng=random.Random(1))
    assert by_api.waits[0] <= API_WAKE_SECONDS + 60 * 1.25
    assert by_api.waits[0] < by_alarm.waits[0]


def test_a_task_busy_with_a_long_job_stays_wanted(prod):
    """In-flight messages count as work: the desired count does not drop under a running job
    (before, a visible-only backlog of 0 scaled it to 0 and only scale-in protection kept it)."""
    policy = _standard(prod, api_wake=False)
    result = simulate_service(policy, [60.0], [3 * 3600.0], horizon=60, rng=random.Random(1))
    running = [m for m, r in enumerate(result.series.running) if r >= 1]
    assert len(running) > 170
    assert all(result.series.desired[m] >= 1 for m in range(running[0], running[-1]))


def test_scale_in_steps_down_gradually_and_to_zero_only_after_idle_minutes(prod):
    policy = _standard(prod)
    arrivals = [600 + i * 0.5 for i in range(1200)]  # 120 a minute for 10 minutes
    result = simulate_service(policy, arrivals, [30.0] * len(arrivals), horizon=4 * 3600,
                              rng=random.Random(1))
    desired = result.series.desired
    peak = desired.index(policy.max_tasks)
    after = desired[peak:]
    for before, now in itertools.pairwise(after):
        # At most half the tasks per step; the last one goes through the scale-to-zero alarm.
        assert now >= math.ceil(before / 2) or before == 1, after
    last_one = max(m for m, d in enumerate(desired) if d == 1 and (m == 0 or desired[m - 1] > 1))
    first_zero = desired.index(0, last_one)
    # Desired is the minute's maximum: the step to 0 shows one minute later.
    assert first_zero - last_one >= SCALE_IN_MINUTES
    visible = result.series.visible
    assert all(visible[m] == 0 for m in range(first_zero - SCALE_IN_MINUTES, first_zero))


@pytest.mark.parametrize(("value", "percent"), [(0.49, -25), (0.26, -25), (0.25, -50), (0.0, -50)])
def test_scale_in_step_bounds_below_the_threshold(value, percent):
    """Below the threshold (0.5) a step's upper bound is inclusive, its lower bound exclusive."""
    assert scale_in_percent(value) == percent


@pytest.mark.parametrize(("desired", "percent", "change"), [
    (20, -50, -10), (3, -50, -1), (9, -25, -2), (2, -25, -1), (1, -50, -1), (4, 50, 2), (1, 25, 1)])
def test_percent_change_is_truncated_with_at_least_one_task(desired, percent, change):
    assert percent_adjustment(desired, percent) == change


def test_idle_queue_delays_the_alarm_path_only(prod):
    """After six idle hours SQS publishes no data point for a while: the alarm cannot see the
    first message; the API wake-up does not depend on metrics."""
    policy = _standard(prod, api_wake=False, idle_queue_metric_delay_seconds=300)
    late = 7 * 3600.0
    woken = simulate_service(policy, [late], [30.0], horizon=late + 600, rng=random.Random(1))
    fresh = simulate_service(dataclasses.replace(policy, idle_queue_metric_delay_seconds=0),
                             [late], [30.0], horizon=late + 600, rng=random.Random(1))
    assert woken.waits[0] >= fresh.waits[0] + 240


def test_backlog_scales_out_to_max_and_back_to_min(prod):
    policy = _standard(prod, api_wake=True)
    arrivals = [600 + i * 0.5 for i in range(1200)]  # 120 a minute for 10 minutes
    result = simulate_service(policy, arrivals, [30.0] * len(arrivals), horizon=4 * 3600,
                              rng=random.Random(1))
    assert result.peak_tasks == policy.max_tasks
    assert result.series.desired[-1] == policy.min_tasks == 0


def test_scale_out_counts_starting_tasks_no_overshoot_to_max(prod):
    """200 messages over 10 minutes need 5 tasks at the target. Dividing the backlog by running
    tasks only kept the ratio high while new tasks started, and target tracking added tasks up to
    max_tasks (20); MAX(running, desired) counts the starting tasks. What remains above 5 is one
    step on a data point from before the previous scale-out (metric lag)."""
    policy = _standard(prod, api_wake=True)
    arrivals = [600 + i * 3.0 for i in range(200)]
    result = simulate_service(policy, arrivals, [30.0] * len(arrivals), horizon=3 * 3600,
                              rng=random.Random(1))
    needed = math.ceil(len(arrivals) / policy.target)
    assert needed == 5 and policy.max_tasks == 20
    assert result.peak_tasks <= math.ceil(1.5 * needed)


def test_scale_in_never_stops_a_busy_task(prod):
    """A job far longer than the quiet period still finishes: its task is protected."""
    policy = _standard(prod)
    result = simulate_service(policy, [60.0, 61.0], [3 * 3600.0, 10.0], horizon=60,
                              rng=random.Random(1))
    assert result.jobs == 2
    assert result.task_hours >= 3.0


def test_batch_retries_spot_reclaims_then_fails(prod):
    base = BatchPolicy.from_config(prod, prod.tier("batch"))
    always_reclaimed = dataclasses.replace(base, interruptions_per_hour=3600.0, on_demand_slots=0)
    result = simulate_batch(always_reclaimed, [0.0], [3600.0], horizon=60, rng=random.Random(1))
    assert result.interruptions == base.retry_attempts
    assert result.failed == 1
    calm = simulate_batch(dataclasses.replace(base, interruptions_per_hour=0), [0.0], [3600.0],
                          horizon=60, rng=random.Random(1))
    assert calm.interruptions == calm.failed == 0
    assert calm.waits == [pytest.approx(5 + base.start_seconds)]


def test_batch_overflows_to_on_demand_when_spot_is_full(prod):
    base = dataclasses.replace(BatchPolicy.from_config(prod, prod.tier("batch")),
                               spot_slots=1, on_demand_slots=1, interruptions_per_hour=0)
    result = simulate_batch(base, [0.0, 0.0], [3600.0, 3600.0], horizon=60, rng=random.Random(1))
    assert result.spot_task_hours == pytest.approx(result.on_demand_task_hours, rel=0.01)


def test_seconds_above_objective_is_a_union_of_intervals():
    # Waits 100 (over 60 by 40) and 130 overlapping: [60, 100] and [61, 131] -> 71 s.
    assert seconds_above([0.0, 1.0], [100.0, 131.0], 60) == pytest.approx(71.0)
    assert seconds_above([0.0], [10.0], 60) == 0


# --- CLI -------------------------------------------------------------------------------------

def test_simulate_prints_every_tier_and_writes_a_png(tmp_path, capsys):
    chart = tmp_path / "chart.png"
    assert simulate_cli.main(["--env", "prod", "--trace", "nightly", "--chart", str(chart),
                              "--check"]) == 0
    out = capsys.readouterr().out
    for tier in ("critical", "standard", "batch"):
        assert f"\n{tier} " in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_exits_1_when_a_tier_misses_its_objective(tmp_path, capsys):
    # 3000 onboarding jobs in one minute: far beyond what target tracking can meet in 60 s.
    trace = _write(tmp_path, "minute,job_type,count\n5,onboarding,3000\n")
    args = ["--env", "prod", "--trace", str(trace), "--chart", str(tmp_path / "c.png")]
    assert simulate_cli.main(args) == 0
    assert simulate_cli.main([*args, "--check"]) == cli.EXIT_MISSED
    captured = capsys.readouterr()
    assert "MISSES" in captured.out
    assert "critical miss their latency objective" in captured.err


@pytest.mark.parametrize("args", [
    ["--env", "nowhere", "--trace", "weekday"],
    ["--env", "prod", "--trace", "no-such-trace"],
    ["--env", "prod"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    proc = subprocess.run([sys.executable, "-m", "jobfleet_tools", "simulate", *args],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
