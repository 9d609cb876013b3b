"""Payments through a real stack (PostgreSQL, the CLI as a user runs it, the usage API).

Given the public scenario alliance-2026-q4 run through its steps 1-8 (September and
October 2026 closed: kddi owes highreso 65,090 yen and sakura owes highreso 26,158 for
September; kddi owes sakura 468,420 and highreso 17,604 for October), then:

- the payment steps of its steps.json print what expected.json says (they concern the
  September transfer only, so they run before the corrections of the steps before them,
  another part of the ledger); and `payments list` shows September's and October's
  transfers as expected.json does (its November rows need those corrections);
- only the payer records and only the payee decides, through the CLI and the API;
- payments recorded at the same moment never together exceed their transfer;
- a member never sees another member's payments;
- `verify --db` checks the confirmed payments' entries, and the period's auditor bundle,
  exported after them, still verifies.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from ledger.settings import APP_ROLE, with_user
from tests.db import fetch
from tests.scenario import SCENARIOS, expected, normalized, run_later_steps, run_steps, shown

pytestmark = pytest.mark.infra

SCENARIO = SCENARIOS / "alliance-2026-q4"
PAY_STEPS = ("pay_record", "pay_confirm_by_payer", "pay_confirm", "pay_record_rest", "pay_over", "pay_reject",
             "pay_open_period")
MEMBERS = ("kddi", "sakura", "highreso")


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    stack = make_stack()
    run_steps(stack, SCENARIO, tmp_path_factory.mktemp("payments"))
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in MEMBERS}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]
    return stack, url, tokens


@pytest.fixture(scope="module")
def scenario_payments(ledger):
    """The scenario's payment steps, run once, first: they number the first payments."""
    stack, _, _ = ledger
    return run_later_steps(stack, SCENARIO, PAY_STEPS)


def call(ledger, who: str, method: str, path: str, **kwargs) -> httpx.Response:
    _, url, tokens = ledger
    return httpx.request(method, f"{url}{path}", headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=30,
                         **kwargs)


def test_the_scenarios_payment_steps_print_what_it_expects(scenario_payments):
    want = expected(SCENARIO)
    for key in ("pay_record", "pay_confirm", "pay_record_rest", "pay_reject"):
        assert shown(scenario_payments[key], want[key]) == normalized(want[key]), key
    assert scenario_payments["pay_record"]["id"] == scenario_payments["pay_confirm"]["id"] == "pay-1"
    assert scenario_payments["pay_reject"]["note"] == "not received"


def test_the_list_as_of_a_day_is_what_the_scenario_expects_of_the_periods_closed_here(ledger, scenario_payments):
    stack, _, _ = ledger
    listed = stack.json("payments", "list", "--as-of", "2027-01-15")
    want = expected(SCENARIO)["payments_list"]
    assert listed["as_of"] == want["as_of"]
    assert listed["transfers"] == [row for row in want["transfers"] if row["period"] <= "2026-10"]


def test_only_the_payer_records_and_only_the_payee_decides(ledger, scenario_payments):
    stack, _, _ = ledger
    record = ["payments", "record", "--period", "2026-10", "--amount", "100", "--paid-on", "2026-11-20",
              "--reference", "R"]
    for who, to in (("sakura", "kddi"), ("highreso", "kddi"), ("sakura", "highreso"), ("nobody", "sakura")):
        refused = stack.run(*record, "--as", who, "--to", to, check=False)
        assert refused.returncode == 2 and refused.stderr.count(b"\n") == 1, refused.stderr
    assert stack.run(*record, "--to", "sakura", check=False).returncode == 2  # the operator records nothing
    made = stack.json(*record, "--as", "kddi", "--to", "sakura")
    for who in ("kddi", "highreso"):
        assert stack.run("payments", "confirm", made["id"], "--as", who, check=False).returncode == 2
    assert stack.run("payments", "reject", made["id"], "--as", "sakura", "--note", " ", check=False).returncode == 2
    assert stack.json("payments", "confirm", made["id"], "--as", "sakura")["state"] == "confirmed"
    assert stack.run("payments", "reject", made["id"], "--as", "sakura", "--note", "no", check=False).returncode == 2


def test_payments_recorded_at_once_never_exceed_their_transfer(ledger, scenario_payments):
    """kddi owes highreso 17,604 yen for October: eight payments of 5,000 sent at once make
    three recorded, whatever their order, and five refused (409); then two commands at
    once for the 2,604 left: one is recorded, the other refused."""

    async def at_once() -> list[int]:
        _, url, tokens = ledger
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens['kddi']}"}, timeout=60) as http:
            body = {"period": "2026-10", "to": "highreso", "amount_yen": 5000, "paid_on": "2026-11-30",
                    "reference": "SAME-TIME"}
            answers = await asyncio.gather(*(http.post(f"{url}/v1/payments", json=body) for _ in range(8)))
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(at_once()) == [201] * 3 + [409] * 5
    stack, _, _ = ledger
    commands = [stack.popen("payments", "record", "--as", "kddi", "--period", "2026-10", "--to", "highreso",
                            "--amount", "2604", "--paid-on", "2026-11-30", "--reference", f"CLI-{n}") for n in (1, 2)]
    assert sorted(command.wait(timeout=120) for command in commands) == [0, 2]
    row = next(t for t in stack.json("payments", "list", "--as", "kddi")["transfers"]
               if (t["period"], t["to"]) == ("2026-10", "highreso"))
    assert (row["pending_yen"], row["paid_yen"]) == (17604, 0)
    held = fetch(stack.database_url, "SELECT sum(amount_yen) AS s FROM payments WHERE period = '2026-10' "
                                     "AND payer = 'kddi' AND payee = 'highreso'")[0]["s"]
    assert held == 17604


def test_a_member_never_sees_another_members_payments(ledger, scenario_payments):
    stack, _, _ = ledger
    paid = call(ledger, "sakura", "POST", "/v1/payments", json={
        "period": "2026-09", "to": "highreso", "amount_yen": 26158, "paid_on": "2026-10-30", "reference": "S-1"})
    assert paid.status_code == 201, paid.text
    payment = paid.json()["id"]
    for path, method in ((f"/v1/payments/{payment}", "GET"), (f"/v1/payments/{payment}/confirm", "POST"),
                         ("/v1/payments/pay-999", "GET")):  # another's, like one that does not exist
        answer = call(ledger, "kddi", method, path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", path
    assert stack.run("payments", "show", payment, "--as", "kddi", check=False).returncode == 2
    seen = call(ledger, "kddi", "GET", "/v1/payments", params={"with_payments": "true"}).json()
    assert all("kddi" in (t["from"], t["to"]) for t in seen["transfers"])
    assert payment not in json.dumps(seen)
    assert call(ledger, "highreso", "POST", f"/v1/payments/{payment}/confirm").json()["state"] == "confirmed"
    everything = call(ledger, "auditor", "GET", "/v1/payments", params={"as_of": "2026-12-07"}).json()
    sakura = next(t for t in everything["transfers"] if t["from"] == "sakura")
    assert (sakura["status"], sakura["paid_yen"]) == ("paid", 26158)
    assert call(ledger, "auditor", "POST", f"/v1/payments/{payment}/confirm").status_code == 403


def test_the_books_verify_with_their_payments_and_bundles_still_verify(ledger, scenario_payments, tmp_path):
    stack, _, _ = ledger
    verified = stack.json("verify", "--db")
    confirmed = fetch(stack.database_url, "SELECT count(*) AS n FROM payment_decisions WHERE state = 'confirmed'")
    assert verified["payments"] >= 2 and confirmed[0]["n"] >= 1
    kinds = [r["kind"] for r in fetch(stack.database_url, "SELECT kind FROM journal_entries WHERE period = '2026-09' "
                                                          "ORDER BY seq")]
    assert "transfer_owed" in kinds and "payment" in kinds and "transfer" not in kinds
    stack.run("keys", "init", check=False)  # once per stack; a second init is refused
    (tmp_path / "ledger.pub").write_bytes(stack.run("keys", "public").stdout)
    stack.run("export", "2026-09", "--out", str(tmp_path / "bundle"))
    journal = (tmp_path / "bundle" / "journal.ndjson").read_text().splitlines()
    assert journal and not any('"kind":"payment"' in line for line in journal)
    stack.run("verify", str(tmp_path / "bundle"), "--public-key", str(tmp_path / "ledger.pub"))
    stack.run("verify", "--db", "--anchor", str(tmp_path / "bundle"), "--public-key", str(tmp_path / "ledger.pub"))


def test_the_application_role_cannot_change_a_payment(ledger, scenario_payments):
    stack, _, _ = ledger
    app_url = with_user(stack.database_url, APP_ROLE)
    for statement in ("UPDATE payments SET amount_yen = 1", "DELETE FROM payment_decisions",
                      "UPDATE statement_transfers SET amount_yen = 1", "INSERT INTO statement_transfers "
                      "VALUES ('2026-10', 9, 'kddi', 'sakura', 1)"):
        with pytest.raises(Exception, match="append-only|permission denied"):
            fetch(app_url, statement)
