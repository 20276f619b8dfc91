"""invoice.render: document generation. The PDF is written to the task's /tmp (the only writable path);
the job's result is a summary a caller can act on (where the file is, its size and checksum)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from decimal import Decimal, InvalidOperation

from worker import PermanentError, job

from team_jobs.pdf import render

MAX_ITEMS = 5000


def _amount(value, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PermanentError(f"{where} is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise PermanentError(f"{where} must be a non-negative number, got {value!r}")
    return amount


@job("invoice.render")
def render_invoice(payload, ctx):
    customer = payload.get("customer")
    items = payload.get("items")
    if not isinstance(customer, str) or not customer:
        raise PermanentError("invoice.render needs a customer name")
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise PermanentError(f"invoice.render needs 1 to {MAX_ITEMS} items")
    lines = [f"Invoice for {customer}", f"Job {ctx.job_id}", ""]
    total = Decimal(0)
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("description"), str):
            raise PermanentError(f"items[{index}] needs a description")
        quantity = _amount(item.get("quantity", 1), f"items[{index}].quantity")
        price = _amount(item.get("unitPrice"), f"items[{index}].unitPrice")
        total += quantity * price
        lines.append(f"{item['description'][:60]:<60} {quantity:>6} x {price:>10.2f}")
    lines += ["", f"Total: {total:.2f} {payload.get('currency', 'EUR')}"]
    document = render(lines)
    path = os.path.join(tempfile.gettempdir(), f"invoice-{ctx.job_id}.pdf")
    with open(path, "wb") as out:
        out.write(document)
    ctx.logger.info("invoice rendered", extra={"jobId": ctx.job_id, "bytes": len(document)})
    return {"customer": customer, "total": f"{total:.2f}", "items": len(items), "pdfBytes": len(document),
            "sha256": hashlib.sha256(document).hexdigest()}
