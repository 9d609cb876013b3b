"""The documents as a reader gets them: HTML pages and PDFs, read back with poppler.

Given the public scenario's October statement (no stack), when every document is rendered,
then each invoice's PDF text (pdftotext) holds the issuer's name and registration number,
the recipient, the tax and the total of the statement; IPAex Gothic is embedded; a closed
period's files come out the same bytes twice; nothing a tenant id holds becomes markup.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import orjson
import pytest

from ledger.documents import output, render
from tests.documents.stackless import period_documents

# Every test renders PDFs with WeasyPrint (seconds each) and reads them with poppler.
pytestmark = pytest.mark.heavy

POPPLER = ("pdftotext", "pdffonts", "pdfinfo")


def poppler(tool: str, *args: str) -> str:
    assert shutil.which(tool), f"{tool} is missing: poppler-utils (`make install` installs it)"
    return subprocess.run([tool, *args], capture_output=True, check=True, text=True).stdout


def pdf_text(path) -> str:
    """The PDF's text with runs of spaces made one, as a person reading it would."""
    return re.sub(r"[ \t]+", " ", poppler("pdftotext", "-layout", str(path), "-"))


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    documents = period_documents("2026-10")
    folder = tmp_path_factory.mktemp("documents")
    return documents, output.write(documents, folder), folder


def test_the_manifest_lists_every_file_written(october):
    documents, manifest, folder = october
    assert orjson.loads((folder / "manifest.json").read_bytes()) == manifest
    assert manifest["period"] == "2026-10"
    assert len(manifest["documents"]) == 12 + 5 + 3 + 1
    for entry in manifest["documents"]:
        assert (folder / entry["html"]).read_bytes().startswith(b"<!DOCTYPE html>")
        assert (folder / entry["pdf"]).read_bytes().startswith(b"%PDF-")


def test_each_invoices_pdf_text_holds_registration_recipient_tax_and_total(october):
    documents, manifest, folder = october
    statement = documents.statement
    invoices = {("tenant_invoice", i.reseller, i.tenant): i for i in statement.tenant_invoices}
    invoices |= {("member_invoice", i.provider, i.reseller): i for i in statement.member_invoices}
    for entry in manifest["documents"]:
        if entry["kind"] not in ("tenant_invoice", "member_invoice"):
            continue
        wanted = invoices.pop((entry["kind"], entry["issuer"], entry["recipient"]))
        text = pdf_text(folder / entry["pdf"])
        issuer = documents.catalog.members[entry["issuer"]]
        assert "適格請求書" in text and issuer.name in text
        assert f"登録番号 Registration No. {issuer.invoice_registration}" in text
        recipient = entry["recipient"] if entry["kind"] == "tenant_invoice" else documents.catalog.members[entry["recipient"]].name
        assert f"{recipient} 御中" in text
        assert re.search(rf"消費税（10%） Consumption tax at 10% ¥{wanted.tax_yen:,}\n", text)
        assert re.search(rf"合計（税込） Total, tax included ¥{wanted.total_yen:,}\n", text)
        assert f"10%対象 課税標準額 Subtotal at 10%, excl. tax ¥{wanted.subtotal_yen:,}" in text
        assert "発行日 Date of issue 2026年11月1日" in text
        assert "2026年10月1日〜2026年10月31日" in text
    assert invoices == {}


def test_the_japanese_font_is_embedded(october):
    _, manifest, folder = october
    for entry in manifest["documents"][:1] + manifest["documents"][-2:]:
        fonts = poppler("pdffonts", str(folder / entry["pdf"]))
        rows = [line.split() for line in fonts.splitlines()[2:]]
        assert rows and all(row[-5] == "yes" for row in rows), fonts  # emb
        assert all("IPAexGothic" in row[0] for row in rows), fonts


def test_a_closed_periods_documents_are_the_same_bytes_twice(october):
    documents, manifest, folder = october
    again = period_documents("2026-10")
    assert again.manifest() == manifest
    one_of_each = {p.kind: p for p in again.planned}
    for planned in one_of_each.values():
        for relative, data in output.files(again, planned).items():
            assert data == (folder / relative).read_bytes(), relative
    info = poppler("pdfinfo", str(folder / manifest["documents"][0]["pdf"]))
    assert re.search(r"CreationDate:\s+Sun Nov\s+1 02:26:40 2026 UTC", info), info  # the close


def test_a_draft_says_so_and_is_dated_when_made():
    documents = period_documents("2026-10", closed=False)
    page = render.html(documents.content(documents.planned[0]))
    assert "下書き DRAFT" in page and '<meta name="dcterms.created" content="2026-11-30T00:53:20Z">' in page
    assert "draft, period open" in page


def test_what_a_tenant_id_holds_is_text_not_markup():
    documents = period_documents("2026-10")
    hostile = '<script>alert("x")</script>&'
    statement = documents.statement
    documents.statement = replace(
        statement,
        lines=tuple(replace(x, tenant=hostile) if x.tenant == "kdd-cust-00" else x for x in statement.lines),
        tenant_invoices=tuple(
            replace(i, tenant=hostile) if i.tenant == "kdd-cust-00" else i for i in statement.tenant_invoices
        ),
    )
    planned = next(p for p in period_documents("2026-10").planned if p.recipient == "kdd-cust-00")
    planned = type(planned)(planned.kind, planned.issuer, hostile, planned.total_yen, planned.stem)
    page = render.html(documents.content(planned))
    assert "<script>" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp; 御中" in page


def test_reports_carry_their_charts_as_svg_images(october):
    _, manifest, folder = october
    report = next(e for e in manifest["documents"] if e["kind"] == "settlement_report")
    page = (folder / report["html"]).read_text()
    assert page.count('src="data:image/svg+xml;base64,') == 4
    capacity = (folder / manifest["documents"][-1]["html"]).read_text()
    assert capacity.count('src="data:image/svg+xml;base64,') == 2
    assert "<script" not in page + capacity


def test_a_pdf_is_the_same_bytes_as_with_the_style_sheet_parsed_in_the_page(october):
    """render.pdf parses the pages' shared style sheet once and lays out each page without
    its `<style>`: the cascade, and so the bytes, are those of the whole page."""
    from weasyprint import HTML

    documents, _, _ = october
    for planned in documents.planned[:3] + documents.planned[-1:]:
        page = render.html(documents.content(planned))
        fonts, face = render._shared_fonts()
        whole = HTML(string=page, url_fetcher=render.FETCHER, media_type="print").write_pdf(
            stylesheets=[face], font_config=fonts
        )
        assert render.pdf(page) == whole, planned.stem
    assert len(render._STYLES) == 1


def test_a_page_without_a_style_sheet_is_laid_out_as_it_is():
    assert render._without_style("<p>no style</p>", None) == ("<p>no style</p>", [])
