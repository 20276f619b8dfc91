"""run-one names its redrive generation in every status write (`--generation`, the job parameter the
batch feed sets), so a duplicate Batch job of an older generation (SQS delivered the original
message twice and the feed submitted it twice) that runs while the redriven copy's job is running
can neither take the record over nor stop the redriven job's outcome from landing."""

from __future__ import annotations

import uuid

from jobfleet_contract.status import Run
from tests.worker_image.worker.test_run_one import _envelope, _run_one


def test_an_older_generations_job_does_not_shadow_the_redriven_job(tmp_path, status_table):
    name, store = status_table
    job_id = uuid.uuid4().hex
    envelope = _envelope("test.sleep", {"recordDir": str(tmp_path)}, job_id)
    # Generation 0's first job was dead-lettered, the redrive sent the copy back (generation 1), and
    # the copy's Batch job has started.
    assert store.mark_submitted(job_id, "test.sleep", "batch", "2026-01-01T00:00:00.000Z")
    assert store.mark_dead_lettered(job_id, "test.sleep", 1, "Boom: x", Run("batch-job-0", 0))
    assert store.mark_redriven(job_id, 1)
    redriven = Run("batch-job-1", 1)
    assert store.mark_running(job_id, "test.sleep", 1, redriven)

    # The duplicate job of generation 0 runs now: its writes are refused (the job itself succeeds).
    late = _run_one(["--envelope", envelope, "--generation", "0"], STATUS_TABLE=name,
                    AWS_BATCH_JOB_ID="batch-job-0-duplicate")
    assert late.returncode == 0, late.stderr
    item = store.get(job_id)
    assert (item["status"], item["runId"], int(item["generation"])) == ("running", "batch-job-1", 1)

    # The redriven job's own outcome lands.
    done = _run_one(["--envelope", envelope, "--generation", "1"], STATUS_TABLE=name,
                    AWS_BATCH_JOB_ID="batch-job-1")
    assert done.returncode == 0, done.stderr
    item = store.get(job_id)
    assert (item["status"], item["runId"], int(item["generation"])) == ("succeeded", "batch-job-1", 1)


def test_a_generation_that_is_not_a_count_is_refused_with_exit_2(tmp_path):
    result = _run_one(["--envelope", _envelope("test.sleep", {"recordDir": str(tmp_path)}),
                       "--generation", "-1"])
    assert result.returncode == 2 and "--generation" in result.stderr
