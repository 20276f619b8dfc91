"""JobFleet worker runtime: a bounded, memory-aware SQS consumer that drains on SIGTERM.

Handler API::

    from worker import job, PermanentError

    @job("report")
    def build_report(payload, ctx):
        ...
"""

from worker.dispatch import JobContext, job
from worker.errors import PermanentError

__all__ = ["JobContext", "PermanentError", "job"]
