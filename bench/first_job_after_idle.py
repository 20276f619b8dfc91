"""First job after an idle hour: submit -> start on a min-0 tier, in the capacity simulator.

    .venv/bin/python bench/first_job_after_idle.py [--env prod] [--tier standard] [--seeds 20]

One job (30 s) arrives at a uniformly random second of minute 60 of an otherwise empty trace;
the tier has been at zero tasks all along. Per seed the simulator (the model of the synthesized
policies, `jobfleet_tools/capacity/`) replays it three ways:
- `api`: the API's wake-up with its re-check guard (what `POST /jobs` gets);
- `api one-shot`: a single wake-up call, no re-check (shows whether any scale-in undoes it);
- `alarm` (baseline): the wake-up alarm only (producers that bypass the API).
Prints median and worst wait per path and `ratio: X` = alarm median / api median.
Simulated time only: runs in well under a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics

from jobfleet_config.config import load_environment
from jobfleet_tools.capacity.model import ServicePolicy
from jobfleet_tools.capacity.simulate import simulate_service

IDLE_SECONDS = 3600
JOB_SECONDS = 30.0


def waits(policy: ServicePolicy, seeds: int) -> list[float]:
    result = []
    for seed in range(1, seeds + 1):
        rng = random.Random(seed)
        at = IDLE_SECONDS + rng.random() * 60
        run = simulate_service(policy, [at], [JOB_SECONDS], horizon=at + 60, rng=rng)
        result.append(run.waits[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod")
    parser.add_argument("--tier", default="standard")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    config = load_environment(args.env)
    policy = ServicePolicy.from_config(config, config.tier(args.tier))
    paths = {
        "api": policy,
        "api one-shot": dataclasses.replace(policy, api_wake_interval_seconds=10 * IDLE_SECONDS),
        "alarm": dataclasses.replace(policy, api_wake=False),
    }
    medians = {}
    print(f"{args.env}/{args.tier}: first job after {IDLE_SECONDS // 60} idle minutes, "
          f"{args.seeds} seeds, task start {policy.task_start_seconds:g} s x U(0.75, 1.25)")
    for name, variant in paths.items():
        found = waits(variant, args.seeds)
        medians[name] = statistics.median(found)
        print(f"{name:13s} median {medians[name]:6.1f} s   worst {max(found):6.1f} s")
    print(f"ratio: {medians['alarm'] / medians['api']:.2f}")


if __name__ == "__main__":
    main()
