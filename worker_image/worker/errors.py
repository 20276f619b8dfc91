"""Exceptions that steer what the runtime does with a message (PermanentError and InvalidEnvelope are
the contract's: every runtime classifies them the same way)."""

from jobfleet_contract.errors import PermanentError


class UnknownJobType(PermanentError):
    """No handler is registered for the envelope's type."""


class JobTimeout(Exception):
    """The job ran past its type's maximum duration (retried like any transient failure)."""


class BreakerOpen(Exception):
    """The job type's circuit breaker is open: the job was deferred, not run (never a failure)."""


class RemoteJobError(Exception):
    """A failure raised inside an isolated child process, carrying the original exception's type name."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class RemotePermanentError(RemoteJobError, PermanentError):
    """A PermanentError raised inside an isolated child process."""


def error_type_name(exc: BaseException) -> str:
    """Name for logs and DLQ attributes: the handler's own exception class, even across processes."""
    return getattr(exc, "error_type", type(exc).__name__)
