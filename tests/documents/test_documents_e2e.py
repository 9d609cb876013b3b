"""The documents of the public scenarios' closed months, through the real stack.

Given a stack that ran a public scenario's steps (September and October closed), when
`gpuledger documents PERIOD --out DIR` runs for each month, then the manifest lists every
invoice of the statement, a report per member and the capacity report; each invoice's
PDF text holds the issuer's registration number, the recipient, the tax and the total
of the statement; each report's net is the statement's; a second run writes the same
bytes; a member's run and the API give a member only its own documents, and the API's
files are the command's, byte for byte.
"""

from __future__ import annotations

import re
import sys
import time

import httpx
import orjson
import pytest

from tests.documents.browser import artefacts, ink, screenshot
from tests.documents.stackless import catalog
from tests.documents.test_render import pdf_text
from tests.scenario import run_steps, scenario_dirs

pytestmark = pytest.mark.infra

Q3, Q4 = scenario_dirs()
MONTHS = {"2026-09": "settle_sep_again", "2026-10": "settle_oct"}
MEMBERS = ("highreso", "kddi", "sakura")


def documents_of(make_stack, tmp_path_factory, directory):
    """A stack that ran the scenario's steps, and the documents of both closed months."""
    stack = make_stack()
    folder = tmp_path_factory.mktemp(directory.name)
    steps = run_steps(stack, directory, folder)
    written = {}
    for period in MONTHS:
        started = time.monotonic()
        manifest = stack.json("documents", period, "--out", str(folder / period))
        print(f"{directory.name}: gpuledger documents {period}: {len(manifest['documents'])} documents in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)
        written[period] = manifest
    return stack, steps, folder, written


@pytest.fixture(scope="module")
def ledger(make_stack, tmp_path_factory):
    """alliance-2026-q4: grants, the registry, the capacity report."""
    return documents_of(make_stack, tmp_path_factory, Q4)


@pytest.fixture(scope="module")
def q3_ledger(make_stack, tmp_path_factory):
    return documents_of(make_stack, tmp_path_factory, Q3)


@pytest.fixture(params=[Q3.name, Q4.name])
def scenario(request):
    return request.param, request.getfixturevalue("q3_ledger" if request.param == Q3.name else "ledger")


@pytest.mark.parametrize("period", MONTHS)
def test_every_document_of_a_closed_month_is_written_and_listed(scenario, period):
    _, (_, steps, folder, written) = scenario
    statement, manifest = steps[MONTHS[period]], written[period]
    assert orjson.loads((folder / period / "manifest.json").read_bytes()) == manifest
    listed = [(e["kind"], e["issuer"], e["recipient"], e["total_yen"]) for e in manifest["documents"]]
    assert listed == (
        [("tenant_invoice", i["reseller"], i["tenant"], i["total_yen"]) for i in statement["tenant_invoices"]]
        + [("member_invoice", i["provider"], i["reseller"], i["total_yen"]) for i in statement["member_invoices"]]
        + [("settlement_report", m, None, None) for m in MEMBERS]
        + [("capacity_report", None, None, None)]
    )
    for entry in manifest["documents"]:
        assert (folder / period / entry["html"]).stat().st_size > 1000
        assert (folder / period / entry["pdf"]).read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize("period", MONTHS)
def test_each_invoices_pdf_holds_the_statements_registration_recipient_tax_and_total(scenario, period):
    name, (_, steps, folder, written) = scenario
    statement = steps[MONTHS[period]]
    members = catalog(Q3 if name == Q3.name else Q4).members
    registrations = {m: member.invoice_registration for m, member in members.items()}
    names = {m: member.name for m, member in members.items()}
    assert all(registrations.values())
    figures = {("tenant_invoice", i["reseller"], i["tenant"]): i for i in statement["tenant_invoices"]}
    figures |= {("member_invoice", i["provider"], i["reseller"]): i for i in statement["member_invoices"]}
    for entry in written[period]["documents"]:
        if entry["kind"] in ("tenant_invoice", "member_invoice"):
            invoice = figures.pop((entry["kind"], entry["issuer"], entry["recipient"]))
            text = pdf_text(folder / period / entry["pdf"])
            assert f"Registration No. {registrations[entry['issuer']]}" in text
            recipient = entry["recipient"] if entry["kind"] == "tenant_invoice" else names[entry["recipient"]]
            assert f"{recipient} 御中" in text
            assert re.search(rf"Consumption tax at 10% ¥{invoice['tax_yen']:,}\n", text)
            assert re.search(rf"Total, tax included ¥{invoice['total_yen']:,}\n", text)
    assert figures == {}


@pytest.mark.parametrize("period", MONTHS)
def test_each_members_report_reconciles_to_the_statements_net(scenario, period):
    _, (stack, steps, folder, written) = scenario
    statement = steps[MONTHS[period]]
    for entry in written[period]["documents"]:
        if entry["kind"] == "settlement_report":
            text = pdf_text(folder / period / entry["pdf"])
            net = statement["net_yen"][entry["issuer"]]
            shown = f"-¥{-net:,}" if net < 0 else f"¥{net:,}"
            assert f"The statement's net {shown} ✓ 一致 reconciled" in text, entry["issuer"]
    capacity = pdf_text(folder / period / written[period]["documents"][-1]["pdf"])
    report = stack.json("report", "capacity", period)
    for row in report["rows"]:
        assert f"{row['billed_gpu_seconds']:,}" in capacity


def test_a_closed_month_is_written_again_byte_for_byte(ledger, tmp_path):
    stack, _, folder, written = ledger
    again = stack.json("documents", "2026-09", "--out", str(tmp_path))
    assert again == written["2026-09"]
    for entry in again["documents"]:
        for key in ("html", "pdf"):
            assert (tmp_path / entry[key]).read_bytes() == (folder / "2026-09" / entry[key]).read_bytes(), entry[key]


def test_a_members_run_writes_only_its_own_documents(ledger, tmp_path):
    stack, _, _, written = ledger
    mine = stack.json("documents", "2026-10", "--out", str(tmp_path), "--member", "sakura")
    every = written["2026-10"]["documents"]
    assert mine["documents"] == [
        e for e in every
        if e["kind"] == "capacity_report" or (e["kind"] == "member_invoice" and "sakura" in (e["issuer"], e["recipient"]))
        or (e["kind"] in ("tenant_invoice", "settlement_report") and e["issuer"] == "sakura")
    ]
    assert sorted(p.name for p in (tmp_path / "settlement-reports").iterdir()) == ["sakura.html", "sakura.pdf"]
    refused = stack.run("documents", "2026-10", "--out", str(tmp_path / "x"), "--member", "nobody", check=False)
    assert refused.returncode == 2 and b"no member 'nobody'" in refused.stderr


def test_the_api_serves_each_member_its_own_documents(ledger):
    stack, _, folder, written = ledger
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in MEMBERS}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]

    def get(who: str, path: str) -> httpx.Response:
        return httpx.get(f"{url}/v1/documents/2026-10{path}", headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)

    every = written["2026-10"]["documents"]
    assert get("auditor", "").json()["documents"] == every
    listed = get("kddi", "").json()["documents"]
    assert listed == [e for e in every if e in listed] and len(listed) < len(every)
    report = get("kddi", "/settlement-reports/kddi.pdf")
    assert report.status_code == 200 and report.headers["content-type"] == "application/pdf"
    assert report.content == (folder / "2026-10" / "settlement-reports" / "kddi.pdf").read_bytes()
    invoice = next(e for e in listed if e["kind"] == "tenant_invoice")
    page = get("kddi", "/" + invoice["html"])
    assert page.headers["content-type"].startswith("text/html")
    assert page.content == (folder / "2026-10" / invoice["html"]).read_bytes()
    others = next(e for e in every if e["kind"] == "tenant_invoice" and e["issuer"] != "kddi")
    hidden, missing = get("kddi", "/" + others["pdf"]), get("kddi", "/tenant-invoices/KDDI-202610-TI-00000000.pdf")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
    assert get("kddi", "/settlement-reports/sakura.html").status_code == 404
    assert get("sakura", "/capacity-report.pdf").content == (folder / "2026-10" / "capacity-report.pdf").read_bytes()


def test_chromium_draws_the_scenarios_documents(ledger):
    """Pictures of one document of each kind (KDDI's report), as in README.md's docs/images/."""
    _, _, folder, written = ledger
    chosen = {}
    for entry in written["2026-10"]["documents"]:
        if entry["kind"] != "settlement_report" or entry["issuer"] == "kddi":
            chosen.setdefault(entry["kind"], entry)
    for kind, entry in chosen.items():
        height = {"settlement_report": 3400, "capacity_report": 1600}.get(kind, 1000)
        image = screenshot(folder / "2026-10" / entry["html"], artefacts("documents-q4") / f"{kind}.png", height=height)
        assert 0.01 < ink(image) < 0.6, kind
