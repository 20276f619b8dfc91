"""Handler registry: job type -> function, filled by the @job decorator when handler modules are imported."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobfleet_contract.environment import ConfigError
from worker.errors import UnknownJobType


@dataclass(frozen=True)
class JobContext:
    """What a handler knows about the run it is part of.

    ``deadline`` is wall-clock epoch seconds (``time.time()``), so it means the same thing in an
    isolated child process as in the worker; handlers check ``remaining_seconds()``.
    """

    job_id: str
    job_type: str
    attempt: int
    deadline: float
    logger: logging.Logger
    _result: list[Any] = field(default_factory=list, repr=False, compare=False)

    def remaining_seconds(self) -> float:
        return self.deadline - time.time()

    def set_result(self, value: Any) -> None:
        """The job's result (JSON-serializable), stored as results/<jobId>.json once the job succeeds.

        Same as returning it; for handlers that produce the result before their last steps.
        """
        self._result[:] = [value]

    def result_of(self, returned: Any) -> Any:
        """What the handler returned, else what it passed to set_result, else None."""
        if returned is not None:
            return returned
        return self._result[0] if self._result else None


Handler = Callable[[dict[str, Any], JobContext], Any]

_handlers: dict[str, Handler] = {}


def job(job_type: str) -> Callable[[Handler], Handler]:
    """Register ``fn(payload, ctx)`` as the handler of ``job_type``."""

    def register(fn: Handler) -> Handler:
        existing = _handlers.get(job_type)
        if existing is not None and existing is not fn:
            raise ValueError(
                f"job type {job_type!r} already has a handler: {existing.__module__}.{existing.__name__}"
            )
        _handlers[job_type] = fn
        return fn

    return register


def handler_for(job_type: str) -> Handler:
    try:
        return _handlers[job_type]
    except KeyError:
        raise UnknownJobType(f"no handler registered for job type {job_type!r}") from None


def invoke(handler: Handler, payload: dict[str, Any], ctx: JobContext) -> Any:
    """Run a handler to completion and return what it returned: an ``async def`` handler (or one
    returning an awaitable) is awaited on an event loop of its own, in the calling thread."""
    result = handler(payload, ctx)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def is_registered(job_type: str) -> bool:
    return job_type in _handlers


def registered_types() -> list[str]:
    return sorted(_handlers)


def load_handler_modules(module_paths: tuple[str, ...]) -> None:
    """Import the modules named in WORKER_HANDLERS; importing is what registers their @job functions."""
    for path in module_paths:
        try:
            importlib.import_module(path)
        except ImportError as exc:
            raise ConfigError(f"WORKER_HANDLERS: cannot import {path!r}: {exc}") from None
