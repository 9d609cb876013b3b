"""The payments routes (ledger/http/routes/payments.py) in process, on the in-memory store:
statuses and bodies, the error shape, what each token may do and see, the OpenAPI
document, and the overdue gauge of /metrics. The same routes on PostgreSQL, through a
real stack: tests/e2e/test_payments.py."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from ledger.http.app import create_app
from ledger.service import tokens
from ledger.settings import Settings
from tests.factories import instant
from tests.service.test_payments import Clock, closed_october

ROLES = ("kddi", "sakura", "highreso", "auditor", "admin")
RECORD = {"period": "2026-10", "to": "highreso", "amount_yen": 600, "paid_on": "2026-11-01", "reference": "BANK-1"}


@contextlib.asynccontextmanager
async def api(clock: Clock):
    store = await closed_october(clock)

    async def opened():
        return store

    app = create_app(Settings(Path("."), None, None), open_store=opened)
    secrets = {m: (await tokens.create(store, "member", m, "", 3600))[1] for m in ROLES[:3]}
    for role in ROLES[3:]:
        secrets[role] = (await tokens.create(store, role, None, "", 3600))[1]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {who: httpx.AsyncClient(transport=transport, base_url="http://test",
                                          headers={"Authorization": f"Bearer {secret}"})
                   for who, secret in secrets.items()}
        try:
            yield app, clients
        finally:
            for client in clients.values():
                await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock(instant("2026-11-02T00:00:00+09:00"))


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


async def test_the_payer_records_and_the_payee_confirms(clock):
    async with api(clock) as (_, http):
        recorded = await http["kddi"].post("/v1/payments", json=RECORD)
        assert recorded.status_code == 201
        assert recorded.json()["id"] == "pay-1" and recorded.json()["from"] == "kddi"
        assert recorded.json()["state"] == "recorded"
        assert error(await http["kddi"].post("/v1/payments/pay-1/confirm"), 403) == "forbidden"
        confirmed = await http["highreso"].post("/v1/payments/pay-1/confirm")
        assert confirmed.status_code == 200 and confirmed.json()["state"] == "confirmed"
        assert error(await http["highreso"].post("/v1/payments/pay-1/confirm"), 409) == "payment_refused"
        listed = (await http["kddi"].get("/v1/payments", params={"as_of": "2026-12-01"})).json()
        assert listed["transfers"][0] == {
            "period": "2026-10", "from": "kddi", "to": "highreso", "amount_yen": 1201, "due": "2026-11-30",
            "paid_yen": 600, "pending_yen": 0, "status": "overdue", "days_overdue": 1}


async def test_refusals_answer_the_error_shape_with_their_status(clock):
    async with api(clock) as (_, http):
        assert error(await http["kddi"].post("/v1/payments", json={**RECORD, "amount_yen": 1202}), 409) == "payment_refused"
        assert error(await http["kddi"].post("/v1/payments", json={**RECORD, "period": "2026-11"}), 404) == "not_found"
        assert error(await http["kddi"].post("/v1/payments", json={**RECORD, "to": "kddi"}), 404) == "not_found"
        assert error(await http["highreso"].post("/v1/payments", json={**RECORD, "to": "kddi"}), 403) == "forbidden"
        assert error(await http["admin"].post("/v1/payments", json=RECORD), 403) == "forbidden"
        assert error(await http["auditor"].post("/v1/payments", json=RECORD), 403) == "read_only"
        for bad in ({**RECORD, "amount_yen": "600"}, {**RECORD, "amount_yen": 1.5}, {**RECORD, "extra": 1},
                    {k: v for k, v in RECORD.items() if k != "reference"}, {**RECORD, "paid_on": "2026-13-01"}):
            assert error(await http["kddi"].post("/v1/payments", json=bad), 400) == "bad_request"
        assert (await http["kddi"].post("/v1/payments", json=RECORD)).status_code == 201
        assert error(await http["highreso"].post("/v1/payments/pay-1/reject", json={"note": ""}), 400) == "bad_request"
        assert error(await http["highreso"].post("/v1/payments/pay-1/reject", json={}), 400) == "bad_request"
        rejected = await http["highreso"].post("/v1/payments/pay-1/reject", json={"note": "not received"})
        assert rejected.json()["state"] == "rejected" and rejected.json()["note"] == "not received"
        assert error(await http["highreso"].get("/v1/payments", params={"as_of": "soon"}), 400) == "bad_request"


async def test_a_member_never_sees_another_members_payments(clock):
    async with api(clock) as (_, http):
        assert (await http["kddi"].post("/v1/payments", json=RECORD)).status_code == 201
        for path in ("/v1/payments/pay-1", "/v1/payments/pay-1/confirm", "/v1/payments/pay-2/confirm",
                     "/v1/payments/nonsense/confirm"):
            response = await (http["sakura"].get(path) if path.count("/") == 3 else http["sakura"].post(path))
            assert error(response, 404) == "not_found"
        assert error(await http["sakura"].post("/v1/payments/pay-1/reject", json={"note": "x"}), 404) == "not_found"
        seen = (await http["sakura"].get("/v1/payments", params={"with_payments": "true"})).json()
        assert [(t["from"], t["to"], t["payments"]) for t in seen["transfers"]] == [("kddi", "sakura", [])]
        everything = (await http["auditor"].get("/v1/payments")).json()
        assert [t["to"] for t in everything["transfers"]] == ["highreso", "sakura"]
        assert "payments" not in everything["transfers"][0]  # only when asked
        assert (await http["auditor"].get("/v1/payments/pay-1")).json()["reference"] == "BANK-1"


async def test_the_routes_are_documented(clock):
    async with api(clock) as (app, _):
        paths = app.openapi()["paths"]
    assert set(paths["/v1/payments"]) == {"get", "post"}
    assert {"201", "400", "403", "404", "409"} <= set(paths["/v1/payments"]["post"]["responses"])
    assert paths["/v1/payments"]["post"]["requestBody"]["required"]
    assert {"403", "404", "409"} <= set(paths["/v1/payments/{payment_id}/confirm"]["post"]["responses"])
    assert "400" in paths["/v1/payments/{payment_id}/reject"]["post"]["responses"]
    assert "get" in paths["/v1/payments/{payment_id}"]


async def test_metrics_show_each_members_overdue_yen(clock):
    async with api(clock) as (_, http):
        clock.now = instant("2026-12-01T00:00:00+09:00")
        await http["kddi"].post("/v1/payments", json=RECORD)
        await http["highreso"].post("/v1/payments/pay-1/confirm")
        assert (await http["kddi"].get("/metrics")).status_code == 200
    owed = {m: REGISTRY.get_sample_value("gpuledger_payments_overdue_yen", {"member": m}) for m in ROLES[:3]}
    assert owed == {"kddi": 1201 - 600 + 572, "sakura": 0, "highreso": 0}
