"""Disputes through a real stack: the CLI's commands of SPEC.md and the usage API's routes.

Given a stack with kddi's tenants billed on sakura's GPUs in October 2026 (the catalog's
window and horizon long enough for any date this test runs on), a dispute is opened by
kddi, hidden from highreso, rejected, escalated once, and accepted by the operator, which
voids its seconds; refused commands exit 2 and change nothing. Through the API, members'
tokens act with the same rules, an admin's decides, an auditor's reads; refusals are
`{"error": {"code", "message"}}` with 400, 403, 404 or 409. Voids through the API: only
the seconds' provider (or an admin) makes one, and each member lists only its own.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.factories import DEFAULT_VERSIONS, catalog_text, usage_event

pytestmark = pytest.mark.infra

SETTINGS = "acceptance_horizon_days = 5000\ndispute_window_days = 5000\n"
CLI_GPU, API_GPU, VOID_GPU = "GPU-DISPUTE-CLI", "GPU-DISPUTE-API", "GPU-VOID-API"
HOUR = ("2026-10-03T12:00:00Z", "2026-10-03T13:00:00Z")


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    stack = make_stack()
    folder = tmp_path_factory.mktemp("disputes")
    (folder / "catalog.toml").write_text(catalog_text(*DEFAULT_VERSIONS, settings=SETTINGS))
    stack.run("catalog", "load", str(folder / "catalog.toml"))
    lines = [json.dumps(usage_event(time=HOUR[0], seconds=3600, gpu_uuid=gpu, tenant="acme",
                                    event_id=str(uuid.uuid4()))) for gpu in (CLI_GPU, API_GPU, VOID_GPU)]
    (folder / "usage.ndjson").write_text("\n".join(lines) + "\n")
    assert stack.json("ingest", str(folder / "usage.ndjson"), "--wait", "--timeout", "120")["accepted"] == 3
    return stack


def opening(gpu: str, member: str | None = "kddi", provider: str = "sakura") -> list[str]:
    acting = ["--as", member] if member else []
    return ["dispute", "open", *acting, "--gpu", gpu, "--from", HOUR[0], "--to", HOUR[1],
            "--provider", provider, "--tenant", "acme", "--sku", "H200", "--reason", "not_used", "--note", "idle"]


def refused(stack, *args: str) -> str:
    """Run a command that must be refused (exit 2); its stderr."""
    completed = stack.run(*args, check=False)
    assert completed.returncode == 2, (completed.returncode, completed.stdout, completed.stderr)
    assert completed.stdout == b""
    return completed.stderr.decode()


def test_a_dispute_through_the_cli_from_opening_to_the_operators_decision(ledger):
    stack = ledger
    assert "reseller" in refused(stack, *opening(CLI_GPU, member=None))  # the operator opens none
    assert "own GPUs" in refused(stack, *opening(CLI_GPU, member="sakura", provider="sakura"))
    dispute = stack.json(*opening(CLI_GPU))
    dispute_id = dispute["id"]
    assert (dispute["state"], dispute["gpu_seconds"], dispute["voided_gpu_seconds"]) == ("open", 3600, 0)
    assert dispute["from"] == HOUR[0] and dispute["note"] == "idle"

    before = stack.json("disputes", "list")
    assert "no such dispute" in refused(stack, "dispute", "accept", dispute_id, "--as", "highreso")
    assert stack.json("disputes", "list", "--as", "highreso") == {"disputes": []}
    assert "note" in refused(stack, "dispute", "reject", dispute_id, "--as", "sakura")
    refused(stack, "dispute", "escalate", dispute_id, "--as", "kddi")  # not rejected
    refused(stack, "dispute", "decide", dispute_id, "accept")  # not escalated
    assert stack.json("disputes", "list") == before  # the refusals changed nothing

    assert stack.json("dispute", "reject", dispute_id, "--as", "sakura", "--note", "logs")["state"] == "rejected"
    assert stack.json("dispute", "escalate", dispute_id, "--as", "kddi")["state"] == "escalated"
    assert "cannot be escalated" in refused(stack, "dispute", "escalate", dispute_id, "--as", "kddi")
    refused(stack, "dispute", "decide", dispute_id, "accept", "--as", "kddi")
    decided = stack.json("dispute", "decide", dispute_id, "accept")
    assert (decided["state"], decided["voided_gpu_seconds"]) == ("accepted", 3600)
    assert [h["action"] for h in decided["history"]] == ["open", "reject", "escalate", "decide_accept"]

    [void] = [v for v in stack.json("voids", "list")["voids"] if v["dispute"] == dispute_id]
    assert (void["id"], void["gpu_seconds"], void["made_by"]) == (decided["void"], 3600, "operator")
    lines = stack.json("settle", "2026-10")["lines"]
    assert sum(line["gpu_seconds"] for line in lines) == 7200  # the other two GPUs' only
    assert "nothing to dispute" in refused(stack, *opening(CLI_GPU))
    assert [d["id"] for d in stack.json("disputes", "list", "--as", "sakura")["disputes"]][0] == dispute_id


@pytest.fixture(scope="module")
def api(ledger):
    url = ledger.env_values()["GPULEDGER_API_URL"]
    tokens = {m: ledger.json("token", "create", "--member", m)["token"] for m in ("kddi", "sakura", "highreso")}
    tokens["auditor"] = ledger.json("token", "create", "--role", "auditor")["token"]
    tokens["admin"] = ledger.json("token", "create", "--role", "admin")["token"]
    return url, tokens


def call(api, who: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    url, tokens = api
    return httpx.request(method, f"{url}{path}", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {tokens[who]}"})


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["code"]


BODY = {"gpu_uuid": API_GPU, "from": HOUR[0], "to": HOUR[1], "provider": "sakura", "tenant": "acme",
        "sku": "H200", "reason": "outage"}


def test_disputes_through_the_api_with_the_same_rules(api):
    assert error(call(api, "admin", "POST", "/v1/disputes", BODY), 403) == "forbidden"
    assert error(call(api, "auditor", "POST", "/v1/disputes", BODY), 403) == "read_only"
    assert error(call(api, "kddi", "POST", "/v1/disputes", {**BODY, "tenant": "beta"}), 409) == "nothing_billed"
    assert error(call(api, "kddi", "POST", "/v1/disputes", {**BODY, "to": HOUR[0]}), 400) == "bad_request"
    created = call(api, "kddi", "POST", "/v1/disputes", BODY)
    assert created.status_code == 201, created.text
    dispute = created.json()
    path = f"/v1/disputes/{dispute['id']}"
    assert (dispute["state"], dispute["gpu_seconds"], dispute["reason"]) == ("open", 3600, "outage")

    assert error(call(api, "highreso", "GET", path), 404) == "not_found"
    assert error(call(api, "highreso", "POST", f"{path}/accept"), 404) == "not_found"
    assert dispute["id"] not in call(api, "highreso", "GET", "/v1/disputes").text
    assert error(call(api, "kddi", "POST", f"{path}/accept"), 403) == "forbidden"
    assert error(call(api, "auditor", "POST", f"{path}/accept"), 403) == "read_only"
    assert error(call(api, "admin", "POST", f"{path}/decide", {"decision": "accept"}), 409) == "dispute_refused"
    assert error(call(api, "sakura", "POST", f"{path}/reject", {}), 400) == "note_required"
    assert call(api, "auditor", "GET", path).json() == dispute  # the refusals changed nothing

    accepted = call(api, "sakura", "POST", f"{path}/accept", {"note": "our collector double-counted"})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["state"], accepted.json()["voided_gpu_seconds"]) == ("accepted", 3600)
    assert error(call(api, "sakura", "POST", f"{path}/accept"), 409) == "dispute_refused"
    assert error(call(api, "kddi", "POST", f"{path}/withdraw"), 409) == "dispute_refused"
    listed = call(api, "kddi", "GET", "/v1/disputes").json()["disputes"]
    assert listed[-1] == accepted.json()
    assert error(call(api, "kddi", "GET", "/v1/disputes/dispute-999999"), 404) == "not_found"


def test_the_openapi_document_lists_the_dispute_routes(api):
    url, _ = api
    paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"/v1/disputes", "/v1/disputes/{dispute_id}", *(f"/v1/disputes/{{dispute_id}}/{a}" for a in (
        "accept", "reject", "escalate", "withdraw", "decide"))} <= set(paths)
    assert "409" in paths["/v1/disputes/{dispute_id}/accept"]["post"]["responses"]


VOID = {"gpu_uuid": VOID_GPU, "from": HOUR[0], "to": "2026-10-03T12:30:00Z", "provider": "sakura",
        "reseller": "kddi", "tenant": "acme", "sku": "H200", "reason": "duplicate_report"}


def seconds_in(api, who: str) -> int:
    """The GPU-seconds of October's lines as `who` reads the statement through the API."""
    answer = call(api, who, "GET", "/v1/statements/2026-10")
    assert answer.status_code == 200, answer.text
    return sum(line["gpu_seconds"] for line in answer.json()["lines"])


def test_voids_through_the_api_by_the_provider_only(api, ledger):
    before = ledger.json("settle", "2026-10")
    kept = seconds_in(api, "sakura")  # computed now, and kept for this version of the ledger
    assert error(call(api, "kddi", "POST", "/v1/voids", VOID), 403) == "forbidden"  # the reseller disputes
    assert error(call(api, "highreso", "POST", "/v1/voids", VOID), 403) == "forbidden"
    assert error(call(api, "auditor", "POST", "/v1/voids", VOID), 403) == "read_only"
    assert error(call(api, "sakura", "POST", "/v1/voids", {**VOID, "tenant": "beta"}), 400) == "nothing_to_void"
    assert error(call(api, "sakura", "POST", "/v1/voids", {**VOID, "to": HOUR[0]}), 400) == "bad_request"
    assert ledger.json("settle", "2026-10") == before  # the refusals changed nothing

    made = call(api, "sakura", "POST", "/v1/voids", VOID)
    assert made.status_code == 201, made.text
    assert made.json()["gpu_seconds"] == 1800 and made.json()["void"].startswith("void-")
    assert error(call(api, "sakura", "POST", "/v1/voids", VOID), 400) == "nothing_to_void"
    after = ledger.json("settle", "2026-10")
    assert sum(line["gpu_seconds"] for line in after["lines"]) == sum(
        line["gpu_seconds"] for line in before["lines"]) - 1800
    assert seconds_in(api, "sakura") == kept - 1800  # a void is a new version: nothing kept is served
    for who, sees in (("sakura", True), ("kddi", True), ("highreso", False), ("auditor", True)):
        listed = [v["id"] for v in call(api, who, "GET", "/v1/voids").json()["voids"]]
        assert (made.json()["void"] in listed) is sees, who
