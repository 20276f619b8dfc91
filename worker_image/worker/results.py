"""Job results: what a handler returns (or hands to ``ctx.set_result``) stored as ``results/<jobId>.json``.

Optional: without ``RESULTS_BUCKET`` a returned value is ignored (logged at debug level) and
``ctx.set_result`` still works but nothing is stored. The status record gets a ``result`` map
(``bucket``, ``key``, ``bytes``) so that ``GET /jobs/{id}`` can hand the result back: inline when it is
small (``RESULTS_INLINE_MAX_BYTES``), else as a presigned URL valid ``RESULTS_URL_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobfleet_contract import environment as names
from jobfleet_contract.environment import env_number
from jobfleet_contract.errors import PermanentError

log = logging.getLogger("worker.results")

RESULTS_PREFIX = "results/"
DEFAULT_INLINE_MAX_BYTES = 32768
DEFAULT_URL_SECONDS = 300
MAX_URL_SECONDS = 3600  # a result link is for the caller who asked, not to be passed around


def encode_result(value: Any) -> str | None:
    """The JSON text of a handler's result, or None for no result.

    A value JSON cannot carry is a bug in the handler, not bad luck: retrying cannot fix it.
    """
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"the job's result is not JSON-serializable: {exc}") from None


def result_key(job_id: str) -> str:
    return f"{RESULTS_PREFIX}{job_id}.json"


@dataclass(frozen=True)
class ResultStore:
    """Writes results to the environment's results bucket (encrypted, TLS-only; see the stateful stack)."""

    s3: Any
    bucket: str

    def put(self, job_id: str, text: str) -> dict[str, Any]:
        """Store one result; returns the location recorded on the status item and in the event."""
        body = text.encode()
        key = result_key(job_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return {"bucket": self.bucket, "key": key, "bytes": len(body)}


def result_store_from_env(env: Mapping[str, str] = os.environ) -> ResultStore | None:
    bucket, _, _ = names.completion_settings(env)
    if bucket is None:
        return None
    import boto3

    return ResultStore(boto3.client("s3"), bucket)


@dataclass(frozen=True)
class ResultReader:
    """The API side: a status item's result, inline when small, else as a short-lived presigned URL."""

    s3: Any
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    url_seconds: int = DEFAULT_URL_SECONDS

    def describe(self, location: Mapping[str, Any]) -> dict[str, Any]:
        bucket, key = str(location["bucket"]), str(location["key"])
        size = int(location.get("bytes", 0))
        described: dict[str, Any] = {"resultLocation": f"s3://{bucket}/{key}", "resultBytes": size}
        if size <= self.inline_max_bytes:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            described["result"] = json.loads(body)
        else:
            described["resultUrl"] = self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=self.url_seconds
            )
        return described


def result_reader_settings(env: Mapping[str, str]) -> tuple[int, int]:
    """(inline max bytes, URL seconds) from RESULTS_INLINE_MAX_BYTES / RESULTS_URL_SECONDS."""
    inline = env_number(
        env, names.RESULTS_INLINE_MAX_BYTES, DEFAULT_INLINE_MAX_BYTES, minimum=0, maximum=262144, integer=True
    )
    seconds = env_number(
        env, names.RESULTS_URL_SECONDS, DEFAULT_URL_SECONDS, minimum=1, maximum=MAX_URL_SECONDS, integer=True
    )
    return int(inline), int(seconds)
