"""The usage API against the real service: scope, pseudonyms, roles, revocation, limits.

Given a stack that metered the scenario's first batch, and tokens for each member, an
auditor and an admin, then a member sees only what it resold and what ran on its GPUs
(other resellers' tenants as pseudonyms, without their prices); nothing outside its
scope can be told apart from what does not exist; pseudonyms are stable and cannot be
linked across resellers or providers; auditors read everything and write nothing;
revoked tokens fail.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import orjson
import pytest

from ledger.dev import free_port
from ledger.domain.instants import format_utc
from ledger.http.routes.usage import UsagePage
from tests.db import fetch
from tests.scenario import batch_bytes, scenario_dirs

pytestmark = pytest.mark.infra

SCENARIO = scenario_dirs()[0]
MEMBERS = ("highreso", "kddi", "sakura")
TENANT_PREFIX = {"highreso": "hig-", "kddi": "kdd-", "sakura": "sak-"}


@pytest.fixture(scope="module")
def api(make_stack, tmp_path_factory):
    stack = make_stack()
    folder = tmp_path_factory.mktemp("api")
    (folder / "batch1.ndjson").write_bytes(batch_bytes(SCENARIO, "batch1"))
    stack.run("catalog", "load", str(SCENARIO / "catalog.toml"))
    stack.run("ingest", str(folder / "batch1.ndjson"), "--wait", "--timeout", "600")
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in MEMBERS}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]
    tokens["admin"] = stack.json("token", "create", "--role", "admin")["token"]
    return stack, url, tokens


def get(api, who: str, path: str, **params) -> httpx.Response:
    _, url, tokens = api
    return httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=30)


def post(api, who: str, path: str, content: bytes, content_type: str) -> httpx.Response:
    _, url, tokens = api
    return httpx.post(
        f"{url}{path}", content=content, timeout=30,
        headers={"Authorization": f"Bearer {tokens[who]}", "Content-Type": content_type},
    )


OCTOBER = {"period": "2026-10", "granularity": "month", "group_by": ["tenant", "provider", "reseller", "sku"]}


@pytest.mark.parametrize("member", MEMBERS)
def test_a_member_sees_only_its_resales_and_its_gpus(api, member):
    response = get(api, member, "/v1/usage", **OCTOBER)
    assert response.status_code == 200
    items = response.json()["items"]
    assert items
    for item in items:
        assert member in (item["reseller"], item["provider"])
        if item["reseller"] == member:
            assert item["tenant"].startswith(TENANT_PREFIX[member])
            assert item["retail_yen_estimate"] is not None
        else:
            assert item["tenant"].startswith("tenant-")  # a pseudonym
            assert item["retail_yen_estimate"] is None
    others = [p for m, p in TENANT_PREFIX.items() if m != member]
    assert not any(prefix in response.text for prefix in others)


@pytest.mark.parametrize("params", [OCTOBER, {"period": "2026-10", "granularity": "hour"},
                                    {"period": "2026-10", "group_by": ["region", "service_period"], "credits": "true"}])
def test_a_usage_page_is_what_its_documented_model_says(api, params):
    """The page is written without FastAPI's response model: it must still be that model."""
    body = get(api, "kddi", "/v1/usage", **params).json()
    assert UsagePage.model_validate(body).model_dump(exclude_unset=True) == body


@pytest.mark.parametrize("member", MEMBERS)
def test_a_members_statement_holds_only_its_own_side(api, member):
    response = get(api, member, "/v1/statements/2026-10")
    assert response.status_code == 200
    statement = response.json()
    assert statement["net_yen"].keys() == {member}
    assert all(member in (i["provider"], i["reseller"]) for i in statement["member_invoices"])
    assert all(i["reseller"] == member for i in statement["tenant_invoices"])
    assert all(member in (t["from"], t["to"]) for t in statement["transfers"])
    for line in statement["lines"]:
        if line["reseller"] != member:
            assert line["provider"] == member
            assert "retail_yen" not in line and "retail_yen_per_gpu_hour" not in line
    others = [p for m, p in TENANT_PREFIX.items() if m != member]
    assert not any(prefix in response.text for prefix in others)
    # The member's own numbers are the statement's.
    full = get(api, "auditor", "/v1/statements/2026-10").json()
    assert statement["net_yen"][member] == full["net_yen"][member]


def test_out_of_scope_looks_exactly_like_nothing(api):
    foreign = get(api, "kddi", "/v1/usage", **OCTOBER, reseller="sakura", tenant="sak-cust-00")
    missing = get(api, "kddi", "/v1/usage", **OCTOBER, reseller="sakura", tenant="no-such-tenant")
    assert foreign.status_code == missing.status_code == 200
    assert foreign.json() == missing.json()
    assert foreign.json()["items"] == []


def test_pseudonyms_are_stable_and_unlinkable(api):
    stack, url, tokens = api
    now = int(time.time())
    events = []
    for n, reseller in enumerate(("kddi", "highreso")):
        events.append({
            "specversion": "1.0", "id": f"pseudo-{n}", "source": "//sakura/test", "type": "gpu.usage.v1",
            "time": format_utc(now - 600), "data": {
                "provider": "sakura", "reseller": reseller, "tenant": "shared-name",
                "gpu_uuid": f"GPU-pseudo-{n}", "sku": "H200", "seconds": 60}})
    accepted = post(api, "sakura", "/v1/events", orjson.dumps(events), "application/cloudevents-batch+json")
    assert accepted.status_code == 202, accepted.text

    def seen_by(viewer: str) -> dict:
        params = {"granularity": "hour", "group_by": ["reseller", "tenant"], "sku": "H200",
                  "start": format_utc(now - 3600 * 2), "end": format_utc(now + 3600)}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            items = get(api, viewer, "/v1/usage", **params).json()["items"]
            found = {i["reseller"]: i["tenant"] for i in items
                     if i["reseller"] in ("kddi", "highreso") and i["tenant"] != "shared-name"}
            if viewer == "sakura" and len(found) == 2:
                return found
            if viewer != "sakura":
                return {i["reseller"]: i["tenant"] for i in items}
            time.sleep(0.2)
        raise AssertionError("the events did not become visible")

    first, again = seen_by("sakura"), seen_by("sakura")
    assert first == again  # stable
    assert first["kddi"] != first["highreso"]  # one tenant id of two resellers: two pseudonyms
    # The resellers themselves see their own tenant by its name.
    assert seen_by("kddi").get("kddi") == "shared-name"


def test_the_auditor_reads_everything_and_writes_nothing(api):
    response = get(api, "auditor", "/v1/usage", **OCTOBER)
    assert all(prefix in response.text for prefix in TENANT_PREFIX.values())
    assert get(api, "auditor", "/v1/statements/2026-10").json()["net_yen"].keys() == set(MEMBERS)
    event = {"specversion": "1.0", "id": "a", "source": "//x", "type": "gpu.usage.v1",
             "time": format_utc(int(time.time()) - 60),
             "data": {"provider": "kddi", "reseller": "kddi", "tenant": "t", "gpu_uuid": "G", "sku": "H200", "seconds": 1}}
    assert post(api, "auditor", "/v1/events", orjson.dumps(event), "application/cloudevents+json").status_code == 403
    assert post(api, "auditor", "/v1/catalog", b"", "application/toml").status_code == 403
    assert post(api, "auditor", "/v1/periods/2026-09/close", b"", "application/json").status_code == 403
    assert post(api, "kddi", "/v1/periods/2026-09/close", b"", "application/json").status_code == 403


def test_a_member_sends_only_its_own_gpus_usage(api):
    now = format_utc(int(time.time()) - 60)

    def event(provider):
        return {"specversion": "1.0", "id": "m", "source": "//x", "type": "gpu.usage.v1", "time": now,
                "data": {"provider": provider, "reseller": "kddi", "tenant": "t", "gpu_uuid": "GPU-own",
                         "sku": "H200", "seconds": 1}}

    mixed = orjson.dumps([event("kddi"), event("sakura")])
    refused = post(api, "kddi", "/v1/events", mixed, "application/cloudevents-batch+json")
    assert refused.status_code == 403 and "event 1" in refused.json()["error"]["message"]
    own = post(api, "kddi", "/v1/events", orjson.dumps(event("kddi")), "application/cloudevents+json")
    assert own.status_code == 202 and own.json()["accepted"] == 1


def test_bad_bodies_get_clear_errors(api):
    assert post(api, "admin", "/v1/events", b"{not json", "application/cloudevents+json").status_code == 400
    too_big = b"[" + b",".join([b'{"data":{}}'] * 10_001) + b"]"
    assert post(api, "admin", "/v1/events", too_big, "application/cloudevents-batch+json").status_code == 413
    huge = b'{"data": {"pad": "' + b"x" * (11 * 1024 * 1024) + b'"}}'
    assert post(api, "admin", "/v1/events", huge, "application/cloudevents+json").status_code == 413
    assert post(api, "admin", "/v1/events", b"{}", "text/plain").status_code == 415


def test_revoked_and_unknown_tokens_fail(api):
    stack, url, _ = api
    created = stack.json("token", "create", "--member", "kddi")
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert httpx.get(f"{url}/v1/usage", headers=headers, timeout=30).status_code == 200
    stack.run("token", "revoke", created["id"])
    assert httpx.get(f"{url}/v1/usage", headers=headers, timeout=30).status_code == 401
    assert httpx.get(f"{url}/v1/usage", headers={"Authorization": "Bearer glt_0000000000000000_" + "a" * 43}, timeout=30).status_code == 401
    assert httpx.get(f"{url}/v1/usage", timeout=30).status_code == 401


def test_an_admin_loads_a_catalog_and_closes_a_period(api):
    catalog = (SCENARIO / "catalog.toml").read_bytes()
    loaded = post(api, "admin", "/v1/catalog", catalog, "application/toml")
    assert loaded.status_code == 200 and loaded.json()["retail_prices_added"] == 0
    closed = post(api, "admin", "/v1/periods/2026-09/close", b"", "application/json")
    assert closed.status_code == 200 and closed.json()["closed"] is True
    not_ended = post(api, "admin", "/v1/periods/2099-01/close", b"", "application/json")
    assert not_ended.status_code == 400 and "cannot be closed" in not_ended.json()["error"]["message"]


def test_an_event_over_a_mebibyte_is_dead_lettered_and_a_request_is_one_record(api):
    """Given a batch holding an event over 1 MiB (no broker would take it), then the request
    is accepted, the large event is `malformed` under the request's ingest id, and the rest
    travel as one record: in Kafka whole or not at all."""
    stack, _, _ = api
    now = format_utc(int(time.time()) - 60)
    small = {"specversion": "1.0", "id": "s", "source": "//x", "type": "gpu.usage.v1", "time": now,
             "data": {"provider": "kddi", "reseller": "kddi", "tenant": "t", "gpu_uuid": "GPU-big-1",
                      "sku": "H200", "seconds": 1}}
    large = {**small, "id": "l", "pad": "x" * (1 << 20)}
    answer = post(api, "kddi", "/v1/events", orjson.dumps([small, large, {**small, "id": "s2"}]),
                  "application/cloudevents-batch+json")
    assert answer.status_code == 202, answer.text
    ingest_id = answer.json()["ingest_id"]
    deadline = time.monotonic() + 60
    while True:
        rows = fetch(stack.database_url, "SELECT sum(received) AS r, sum(malformed) AS m, sum(accepted) AS a, "
                     "sum(duplicate) AS d, count(DISTINCT partition) FILTER (WHERE partition IS NOT NULL) AS p "
                     "FROM intake_tallies WHERE ingest_id = $1", ingest_id)[0]
        if rows["r"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (rows["r"], rows["m"], rows["a"] + rows["d"], rows["p"]) == (3, 1, 2, 1)


def test_without_a_broker_the_api_still_reads_and_answers_503_to_events(api, tmp_path):
    """Given the API started against a broker that is not there, then reads answer, and
    events get 503 with Retry-After, never 400."""
    stack, _, tokens = api
    port, dead_broker = free_port(), f"127.0.0.1:{free_port()}"
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "--database-url", stack.env_values()["GPULEDGER_DATABASE_URL"],
         "--kafka-bootstrap", dead_broker, "api", "--port", str(port), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {tokens['kddi']}"}
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/usage", headers=headers, timeout=30).status_code == 200
        event = {"specversion": "1.0", "id": "a", "source": "//x", "type": "gpu.usage.v1",
                 "time": format_utc(int(time.time()) - 60),
                 "data": {"provider": "kddi", "reseller": "kddi", "tenant": "t", "gpu_uuid": "G", "sku": "H200", "seconds": 1}}
        answer = httpx.post(f"{base}/v1/events", content=orjson.dumps(event), timeout=60,
                            headers={**headers, "Content-Type": "application/cloudevents+json"})
        assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
        assert answer.json()["error"]["code"] == "unavailable"
    finally:
        process.terminate()
        process.wait(timeout=30)
