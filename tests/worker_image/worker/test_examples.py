"""The example handlers shipped as the default WORKER_HANDLERS."""

from __future__ import annotations

import logging
import time

import pytest
from worker import PermanentError
from worker.dispatch import JobContext
from worker.examples import build_report, onboard_customer


def _ctx(job_type: str) -> JobContext:
    return JobContext(job_id="j-1", job_type=job_type, attempt=1, deadline=time.time() + 30,
                      logger=logging.getLogger("test"))


def test_onboarding_succeeds_with_just_a_user_id():
    onboard_customer({"userId": "u-123", "apiLatencySeconds": 0}, _ctx("onboarding"))


@pytest.mark.parametrize("payload", [{}, {"userId": ""}, {"userId": 7},
                                     {"userId": "u-1", "email": "not-an-email"}])
def test_onboarding_input_it_can_never_process_is_a_permanent_error(payload):
    with pytest.raises(PermanentError):
        onboard_customer({**payload, "apiLatencySeconds": 0}, _ctx("onboarding"))


def test_report_streams_every_row_to_its_output(tmp_path):
    output = tmp_path / "report.csv"
    build_report({"rows": 12_345, "output": str(output)}, _ctx("report"))
    assert sum(1 for _ in output.open()) == 12_345
