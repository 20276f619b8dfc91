"""partner.sync: calls an external API with a key. The key comes from a secret (PARTNER_API_KEY,
injected by ECS/Batch from Secrets Manager), the endpoint from plain configuration (PARTNER_API_URL).

Failure classes: no key or a 4xx answer is permanent (a retry sends the same request); a 5xx answer,
a timeout or a refused connection is transient and retried with the worker's backoff.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from worker import PermanentError, job

TIMEOUT_SECONDS = 10


@job("partner.sync")
def sync_partner(payload, ctx):
    key = os.environ.get("PARTNER_API_KEY", "")
    url = os.environ.get("PARTNER_API_URL", "")
    if not key or not url:
        raise PermanentError("PARTNER_API_KEY and PARTNER_API_URL must be configured for partner.sync")
    account = payload.get("account")
    if not isinstance(account, str) or not account:
        raise PermanentError("partner.sync needs an account")
    request = urllib.request.Request(
        f"{url.rstrip('/')}/accounts/{account}/sync", method="POST",
        data=json.dumps({"jobId": ctx.job_id}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 "Idempotency-Key": ctx.job_id})  # the partner deduplicates our retries
    try:
        with urllib.request.urlopen(request, timeout=min(TIMEOUT_SECONDS, ctx.remaining_seconds())) as answer:
            body = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code != 429:
            raise PermanentError(f"partner refused account {account!r}: HTTP {exc.code}") from None
        raise ConnectionError(f"partner unavailable: HTTP {exc.code}") from None
    return {"account": account, "partner": body}
