"""The transition rule under random interleavings of every writer's events (Hypothesis), as a pure
function and end to end through the status store on the moto server.

A job is submitted (API), run and dead-lettered (worker run 1; an earlier attempt may hang and
report late; a draining worker may hand an attempt back instead of failing it), redriven (selective:
a copy of generation 1 and the redrive's own "queued" write; native: SQS moves the message,
generation unchanged, no redrive write) and run again until it succeeds (run 2). Each writer's own
writes are in order, and nothing after the dead-letter send can come before it; the dead-letter
status write, the redrive's write, the late outcome of the hung attempt and run 2's writes arrive in
any order. Whatever the order, the job ends `succeeded` with run 2's attempts, and no accepted write
ever moves the generation back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobfleet_contract.status import SUCCEEDED, JobStatusStore, Recorded, Run, Transition, decide
from tests.support.status_table import new_status_table


@dataclass(frozen=True)
class Event:
    writer: str
    transition: Transition
    run: Run = field(default_factory=Run)
    attempt: int = 0
    generation: int = 0  # the redrive's


@dataclass(frozen=True)
class Scenario:
    ordered: tuple[Event, ...]  # up to the dead-letter send, in order
    delayed: tuple[tuple[Event, ...], ...]  # per writer, each in its own order, interleaved freely
    final_run: Run
    final_attempts: int


@st.composite
def scenarios(draw) -> Scenario:
    first_attempts = draw(st.integers(1, 3))
    hung = draw(st.none() | st.integers(1, first_attempts - 1)) if first_attempts > 1 else None
    mode = draw(st.sampled_from(["selective", "native"]))
    second_attempts = draw(st.integers(1, 3))
    run1 = Run("message-1", 0)
    run2 = Run("message-2", 1 if mode == "selective" else 0)
    # An attempt that is not the last either fails or is handed back by a draining worker.
    handed_back = st.sampled_from([Transition.FAIL, Transition.RELEASE])
    ordered = [Event("api", Transition.SUBMIT)]
    for attempt in range(1, first_attempts + 1):
        ordered.append(Event("run1", Transition.START, run1, attempt))
        if attempt < first_attempts and attempt != hung:
            ordered.append(Event("run1", draw(handed_back), run1, attempt))
    delayed = [(Event("run1", Transition.DEAD_LETTER, run1, first_attempts),)]
    if hung is not None:
        late = draw(st.sampled_from([Transition.FAIL, Transition.SUCCEED, Transition.RELEASE]))
        delayed.append((Event("hung", late, run1, hung),))
    if mode == "selective":
        delayed.append((Event("redrive", Transition.REDRIVE, generation=1),))
    second = []
    for attempt in range(1, second_attempts + 1):
        second.append(Event("run2", Transition.START, run2, attempt))
        second.append(Event("run2", Transition.SUCCEED if attempt == second_attempts else draw(handed_back),
                            run2, attempt))
    delayed.append(tuple(second))
    return Scenario(tuple(ordered), tuple(delayed), run2, second_attempts)


@st.composite
def interleavings(draw) -> tuple[Scenario, list[Event]]:
    scenario = draw(scenarios())
    queues = [list(events) for events in scenario.delayed]
    order = list(scenario.ordered)
    while any(queues):
        pending = [queue for queue in queues if queue]
        order.append(draw(st.sampled_from(pending)).pop(0))
    return scenario, order


def replay(order: list[Event]) -> Recorded:
    recorded = Recorded()
    for event in order:
        after = decide(recorded, event.transition, event.run, event.attempt, event.generation)
        if after is not None:
            assert after.generation >= recorded.generation, (event, recorded)
            if after.run_id == recorded.run_id and after.generation == recorded.generation:
                assert after.attempts >= recorded.attempts or event.transition is Transition.REDRIVE
            recorded = after
    return recorded


@given(interleavings())
@settings(max_examples=300, deadline=None)
def test_every_interleaving_ends_with_the_redriven_run_succeeded(case):
    scenario, order = case
    final = replay(order)
    assert final.status == SUCCEEDED, order
    assert (final.run_id, final.attempts) == (scenario.final_run.run_id, scenario.final_attempts), order
    assert final.generation == scenario.final_run.generation


@given(interleavings())
@settings(max_examples=300, deadline=None)
def test_a_late_outcome_of_an_older_run_or_attempt_is_always_refused(case):
    _scenario, order = case
    final = replay(order)
    for event in order:
        if event.writer in ("run1", "hung"):
            assert decide(final, event.transition, event.run, event.attempt) is None


# --- the same interleavings through the store, against moto ------------------------------------------


@pytest.fixture(scope="module")
def table(moto_endpoint):
    created = new_status_table(moto_endpoint, "converge")
    yield created
    created.delete()


def write(store: JobStatusStore, job_id: str, event: Event) -> bool:
    if event.transition is Transition.SUBMIT:
        return store.mark_submitted(job_id, "report", "standard", "2026-01-01T00:00:00.000Z")
    if event.transition is Transition.REDRIVE:
        return store.mark_redriven(job_id, event.generation)
    method = {Transition.START: store.mark_running, Transition.SUCCEED: store.mark_succeeded,
              Transition.RELEASE: store.mark_released}.get(event.transition)
    if method is not None:
        return method(job_id, "report", event.attempt, event.run)
    method = store.mark_failed if event.transition is Transition.FAIL else store.mark_dead_lettered
    return method(job_id, "report", event.attempt, "Boom: x", event.run)


@given(interleavings())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_store_on_moto_decides_exactly_as_the_rule(table, case):
    _scenario, order = case
    store = JobStatusStore(table, tier="standard")
    job_id = uuid.uuid4().hex
    recorded = Recorded()
    for event in order:
        expected = decide(recorded, event.transition, event.run, event.attempt, event.generation)
        assert write(store, job_id, event) == (expected is not None), (event, recorded)
        recorded = expected or recorded
    item = store.get(job_id)
    assert (item["status"], item.get("runId"), int(item["attempts"]), int(item.get("generation", 0))) == (
        recorded.status, recorded.run_id, recorded.attempts, recorded.generation)
