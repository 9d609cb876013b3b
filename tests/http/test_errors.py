"""Every error the API answers has one shape, `{"error": {"code", "message"}}`, also those
the router answers before any route runs."""

from __future__ import annotations

from pathlib import Path

from ledger.http.app import create_app
from ledger.settings import Settings
from tests.http.test_api_metrics import client, in_memory


async def test_what_no_route_answers_reads_like_every_other_error():
    app = create_app(Settings(Path("."), None, None), open_store=in_memory)
    async with client(app) as http:
        missing = await http.get("/v1/documents/2026-10/a%0Ab")  # `.` in a path pattern stops at a newline
        wrong_method = await http.post("/healthz")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
