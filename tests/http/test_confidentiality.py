"""No member learns another reseller's customers, or another party's claim on a GPU-second.

Given a ledger where each member resells to a tenant with a recognisable id, on its own
GPUs and on another member's, and rejected events naming those tenants, when every
member probes every read endpoint (usage in every grouping, statements, dead letters,
the capacity report) and tries to claim seconds already billed to someone else, then no
answer carries another reseller's tenant id (only pseudonyms) and a conflict says only
that the seconds are taken. An auditor and an admin see everything.
"""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest

from tests.e2e.test_bad_input import event
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

MEMBERS = ("kddi", "sakura", "highreso")
# tenant -> (reseller, provider): each reseller's secret customer, on its own and another's GPUs.
SECRETS = {
    "kdd-secret-own": ("kddi", "kddi"),
    "kdd-secret-on-sakura": ("kddi", "sakura"),
    "sak-secret-own": ("sakura", "sakura"),
    "hig-secret-on-sakura": ("highreso", "sakura"),
}
SKU = {"kddi": "H100", "sakura": "H200", "highreso": "H200"}


def _now(offset: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    stack = make_stack()
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    lines = []
    for index, (tenant, (reseller, provider)) in enumerate(SECRETS.items()):
        sku = "H200" if provider == "sakura" else SKU[reseller]
        base = {"tenant": tenant, "reseller": reseller, "provider": provider, "sku": sku, "seconds": 600}
        lines.append(event(time=_now(-7200), data={**base, "gpu_uuid": f"GPU-secret-{index}"}))
        # and a rejected one naming the same tenant (seconds out of range: schema)
        lines.append(event(time=_now(-7200), data={**base, "gpu_uuid": f"GPU-secret-{index}", "seconds": 0}))
    folder = tmp_path_factory.mktemp("secrets")
    path = folder / "secrets.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    counts = stack.json("ingest", str(path), "--wait", "--timeout", "120")
    assert counts["accepted"] == len(SECRETS) and counts["rejected"] == {"schema": len(SECRETS)}
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in MEMBERS}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]
    return stack, url, tokens, folder


def get(ledger, who: str, path: str, **params) -> httpx.Response:
    _, url, tokens, _ = ledger
    return httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)


def read_everything(ledger, who: str) -> str:
    """Every read endpoint's answers for one caller, as one text to search."""
    period = time.strftime("%Y-%m", time.gmtime(time.time() + 9 * 3600))
    answers = []
    fields = ("tenant", "provider", "reseller", "sku", "service_period", "region")
    for size in range(len(fields) + 1):
        for group in itertools.combinations(fields, size):
            for granularity in ("hour", "month"):
                answers.append(get(ledger, who, "/v1/usage", group_by=list(group), granularity=granularity))
    answers += [get(ledger, who, f"/v1/statements/{period}"), get(ledger, who, "/v1/dead-letters"),
                get(ledger, who, f"/v1/reports/capacity/{period}")]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    return "\n".join(a.text for a in answers)


@pytest.mark.parametrize("member", MEMBERS)
def test_a_member_sees_no_other_resellers_tenant_anywhere(ledger, member):
    seen = read_everything(ledger, member)
    for tenant, (reseller, _) in SECRETS.items():
        if reseller == member:
            assert tenant in seen, f"{member} should see its own tenant {tenant}"
        else:
            assert tenant not in seen, f"{member} learned {reseller}'s tenant {tenant}"
    if member == "sakura":  # the provider sees its GPUs' usage for others, under pseudonyms
        assert "tenant-" in seen


def test_an_auditor_sees_every_tenant(ledger):
    seen = read_everything(ledger, "auditor")
    assert all(tenant in seen for tenant in SECRETS)


def test_a_conflict_says_only_that_the_seconds_are_taken(ledger):
    stack, _, _, folder = ledger
    # highreso claims, as provider and reseller, seconds already billed on kddi's GPU.
    probe = event(time=_now(-7200), data={"tenant": "probe", "reseller": "highreso", "provider": "highreso",
                                          "sku": "H200", "gpu_uuid": "GPU-secret-0", "seconds": 60})
    path = folder / "probe.ndjson"
    path.write_text(json.dumps(probe) + "\n")
    assert stack.json("ingest", str(path), "--wait", "--timeout", "120")["rejected"] == {"conflict": 1}
    letters = get(ledger, "highreso", "/v1/dead-letters", reason="conflict").json()["items"]
    assert len(letters) == 1
    text = json.dumps(letters)
    assert "kddi" not in text and "kdd-secret-own" not in text and "H100" not in text
    assert "already billed under another attribution" in letters[0]["detail"]


def test_a_provider_sees_another_resellers_rejected_event_with_the_tenant_as_a_pseudonym(ledger):
    letters = get(ledger, "sakura", "/v1/dead-letters", reason="schema").json()["items"]
    others = [item for item in letters if item["reseller"] != "sakura"]
    assert others and all(item["raw_redacted"] for item in others)
    assert all(json.loads(item["raw"])["data"]["tenant"].startswith("tenant-") for item in others)
    own = [item for item in letters if item["reseller"] == "sakura"]
    assert own and not any(item["raw_redacted"] for item in own)
