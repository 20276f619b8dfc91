"""JobFleet worker runtime: a bounded, memory-aware SQS consumer that drains on SIGTERM.

Handler API::

    from worker import job, PermanentError

    @job("report")
    def build_report(payload, ctx):
        ...
"""

from jobfleet_contract.errors import PermanentError
from worker.dispatch import JobContext, job

__all__ = ["JobContext", "PermanentError", "job"]
