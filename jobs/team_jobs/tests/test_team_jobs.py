"""The example team's own tests: each handler called the way the worker calls it, fn(payload, ctx)."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from worker import JobContext, PermanentError
from worker.dispatch import handler_for, load_handler_modules
from worker.results import encode_result

load_handler_modules(("team_jobs",))


def run(job_type: str, payload: dict, seconds: float = 60):
    """What the worker does: call the handler, keep its result (returned or set on ctx) as JSON."""
    ctx = JobContext("job-1", job_type, 1, time.time() + seconds, logging.getLogger("test"))
    returned = handler_for(job_type)(payload, ctx)
    encoded = encode_result(ctx.result_of(returned))
    return None if encoded is None else json.loads(encoded)


def test_invoice_is_a_pdf_and_the_result_summarises_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the task's /tmp
    result = run("invoice.render", {"customer": "Acme (EU)", "items": [
        {"description": "Onboarding", "quantity": 2, "unitPrice": "99.50"},
        {"description": "Report", "unitPrice": 10}]})
    assert result["total"] == "209.00" and result["items"] == 2
    document = (tmp_path / "invoice-job-1.pdf").read_bytes()
    assert document.startswith(b"%PDF-1.4") and document.rstrip().endswith(b"%%EOF")
    assert b"(Invoice for Acme \\(EU\\)) Tj" in document and len(document) == result["pdfBytes"]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"items": [{"description": "x", "unitPrice": 1}]}, "customer"),
    ({"customer": "c", "items": []}, "items"),
    ({"customer": "c", "items": [{"description": "x", "unitPrice": "ten"}]}, "not a number"),
    ({"customer": "c", "items": [{"description": "x", "unitPrice": -1}]}, "non-negative"),
])
def test_invoice_input_errors_are_permanent(payload, reason):
    with pytest.raises(PermanentError, match=reason):
        run("invoice.render", payload)


def test_analysis_result_is_the_last_complete_step():
    result = run("usage.analyse", {"samples": [1, 2, 3, 4], "chunk": 3})
    assert result == {"samples": 4, "mean": 2.5, "peak": 4, "stddev": 1.118034}


def test_analysis_stops_before_its_deadline_instead_of_being_killed():
    with pytest.raises(PermanentError, match="deadline reached after 0 of 2 samples"):
        run("usage.analyse", {"samples": [1, 2], "chunk": 1, "stepSeconds": 5}, seconds=3)


class Partner(BaseHTTPRequestHandler):
    status = 200
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Partner.seen.append((self.path, self.headers["Authorization"], json.loads(body)))
        self.send_response(Partner.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"synced": true}')

    def log_message(self, *args):
        pass


@pytest.fixture()
def partner(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PARTNER_API_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("PARTNER_API_KEY", "k-123")
    Partner.status, Partner.seen = 200, []
    yield Partner
    server.shutdown()


def test_partner_sync_sends_the_key_and_returns_the_answer(partner):
    assert run("partner.sync", {"account": "a-1"}) == {"account": "a-1", "partner": {"synced": True}}
    assert partner.seen == [("/accounts/a-1/sync", "Bearer k-123", {"jobId": "job-1"})]


def test_partner_4xx_is_permanent_and_5xx_is_retried(partner):
    partner.status = 404
    with pytest.raises(PermanentError, match="HTTP 404"):
        run("partner.sync", {"account": "a-1"})
    partner.status = 503
    with pytest.raises(ConnectionError, match="HTTP 503"):
        run("partner.sync", {"account": "a-1"})


def test_partner_without_its_secret_is_permanent(monkeypatch):
    monkeypatch.delenv("PARTNER_API_KEY", raising=False)
    with pytest.raises(PermanentError, match="PARTNER_API_KEY"):
        run("partner.sync", {"account": "a-1"})
