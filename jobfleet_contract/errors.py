"""Exceptions every runtime that runs jobs (worker, run-one, local mode) classifies the same way."""


class PermanentError(Exception):
    """Raised by a handler when the job can never succeed: dead-lettered at once, never retried."""


class InvalidEnvelope(PermanentError):
    """The message body is not a valid JobFleet envelope."""
