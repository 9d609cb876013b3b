"""Every kind of document as a person sees it: Chromium draws the HTML, poppler the PDF.

Given one document of each kind of the scenario's October (no stack), when headless
Chromium takes a screenshot of its HTML and pdftoppm turns its PDF into pages, then the
pictures are kept under test-artifacts/documents/ and each shows a page with text and,
for the reports, charts: not a blank page, not an error page. The same for a return
invoice and a report's returns, voids, disputes and payments (tests/documents/returns_ledger.py).
"""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from ledger.documents import output
from ledger.domain.access import OPERATOR
from ledger.service import documents
from tests.documents.browser import artefacts, ink, pdf_pages, screenshot
from tests.documents.returns_ledger import returns_ledger
from tests.documents.stackless import period_documents

# Chromium and poppler draw the pages.
pytestmark = pytest.mark.heavy

HEIGHTS = {"tenant_invoice": 1400, "member_invoice": 1400, "settlement_report": 4200, "capacity_report": 2000}


@pytest.fixture(scope="module")
def one_of_each(tmp_path_factory):
    documents = period_documents("2026-10")
    folder = tmp_path_factory.mktemp("one-of-each")
    chosen = {}
    for planned in documents.planned:
        if planned.kind not in chosen:
            for relative, data in output.files(documents, planned).items():
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(data)
            chosen[planned.kind] = planned
    return folder, chosen


@pytest.mark.parametrize("kind", list(HEIGHTS))
def test_chromium_draws_the_page(one_of_each, kind):
    folder, chosen = one_of_each
    planned = chosen[kind]
    image = screenshot(folder / f"{planned.stem}.html", artefacts("documents") / f"{kind}.png", height=HEIGHTS[kind])
    assert image.size == (1000, HEIGHTS[kind])
    assert 0.01 < ink(image) < 0.6, "a blank or a solid page"
    assert ink(image, (0, 0, 1000, 160)) > 0.02, "no title at the top"


@pytest.mark.parametrize("kind", list(HEIGHTS))
def test_the_pdf_pages_look_like_the_page(one_of_each, kind):
    folder, chosen = one_of_each
    planned = chosen[kind]
    pages = pdf_pages(folder / f"{planned.stem}.pdf", artefacts("documents") / f"{kind}-pdf")
    assert pages
    first = Image.open(pages[0])
    assert first.size[0] < first.size[1], "A4 portrait"
    assert 0.01 < ink(first) < 0.6


# -- a month with returns, disputes and payments (README.md's docs/images/return-*.png) --

H2_RULE = (0x1F, 0x5F, 0x99)  # the colour of a report's section rule (style.css, h2)
REPORT_SECTIONS = 10  # net, tenants, issued, received, grants, returns, voids, disputes, payments, usage


@pytest.fixture(scope="module")
def with_returns(tmp_path_factory):
    store, _ = asyncio.run(returns_ledger())
    found = asyncio.run(documents.gather(store, "2026-11", OPERATOR))
    folder = tmp_path_factory.mktemp("with-returns")
    return folder, output.write(found, folder)


def section_rules(image: Image.Image) -> list[int]:
    """The y of each h2's rule: rows where the rule's blue spans most of the page's width."""
    rgb, rows = image.convert("RGB"), []
    for y in range(image.size[1]):
        blue = sum(1 for x in range(0, image.size[0], 4) if max(map(abs, (a - b for a, b in zip(rgb.getpixel((x, y)), H2_RULE, strict=True)))) < 40)
        if blue > image.size[0] // 4 * 0.6 and (not rows or y - rows[-1] > 5):
            rows.append(y)
    return rows


def test_chromium_draws_a_return_invoice(with_returns):
    folder, manifest = with_returns
    [invoice] = [e for e in manifest["documents"] if (e["kind"], e["recipient"]) == ("tenant_invoice", "acme")]
    image = screenshot(folder / invoice["html"], artefacts("documents") / "return-invoice.png", height=1240)
    assert 0.01 < ink(image) < 0.6
    assert ink(image, (0, 0, 1000, 160)) > 0.02, "no title at the top"


def test_chromium_draws_a_reports_returns_voids_disputes_and_payments(with_returns):
    folder, manifest = with_returns
    [report] = [e for e in manifest["documents"] if (e["kind"], e["issuer"]) == ("settlement_report", "kddi")]
    page = screenshot(folder / report["html"], artefacts("documents") / "report-with-returns.png", height=6000)
    rules = section_rules(page)
    assert len(rules) >= REPORT_SECTIONS, rules
    section = page.crop((0, rules[5] - 40, 1000, rules[9] - 40))  # from "returns" to just before "usage"
    section.save(artefacts("documents") / "report-returns-disputes-payments.png")
    assert section.size[1] > 600 and 0.01 < ink(section) < 0.6
