"""The batch tier's job interface: the parameters the feed function submits, the job definition's
command that receives them, and Batch's parameter substitution (local mode's executor applies it
exactly as Batch does).

Both parameters are documented strings: SubmitJob's `parameters` is a string map, and Batch replaces
each `Ref::<name>` element of the command with the parameter's value (the job's, else the job
definition's default). `envelope` is the SQS message body byte for byte; `generation` is the
message's redrive generation (its `jobfleet.redriveCount`, "0" when it was never redriven), so
run-one's status writes name their generation like the worker's (jobfleet_contract.status.Run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ENVELOPE_PARAMETER = "envelope"
GENERATION_PARAMETER = "generation"
# The job definition's defaults: a job submitted without `generation` (by an older feed, or by hand
# with only the envelope) runs as generation 0, a message never redriven.
DEFAULT_PARAMETERS = {GENERATION_PARAMETER: "0"}
COMMAND = ("python", "-m", "worker", "run-one",
           "--envelope", f"Ref::{ENVELOPE_PARAMETER}",
           "--generation", f"Ref::{GENERATION_PARAMETER}")
_REF = "Ref::"


def job_parameters(body: str, generation: int) -> dict[str, str]:
    """SubmitJob's `parameters` for one message: its body and its redrive generation."""
    return {ENVELOPE_PARAMETER: body, GENERATION_PARAMETER: str(generation)}


def substitute(command: Sequence[str], parameters: Mapping[str, str],
               defaults: Mapping[str, str]) -> list[str]:
    """The command a Batch container runs: each element that is `Ref::<name>` becomes the job's
    parameter, else the job definition's default; an element naming neither stays as written."""
    values = {**defaults, **parameters}
    return [values.get(part[len(_REF):], part) if part.startswith(_REF) else part for part in command]

# The status reasons of a reclaimed Spot host (EC2) or task (Fargate): the only failures the job
# definition's retry strategy retries (the stacks and local mode's executor use the same patterns).
EC2_SPOT_RECLAIMED = "Host EC2*"
FARGATE_SPOT_RECLAIMED = "Your Spot Task was interrupted*"
