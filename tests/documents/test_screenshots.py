"""Every kind of document as a person sees it: Chromium draws the HTML, poppler the PDF.

Given one document of each kind of the scenario's October (no stack), when headless
Chromium takes a screenshot of its HTML and pdftoppm turns its PDF into pages, then the
pictures are kept under test-artifacts/documents/ and each shows a page with text and,
for the reports, charts: not a blank page, not an error page.
"""

from __future__ import annotations

import pytest
from PIL import Image

from ledger.documents import output
from tests.documents.browser import artefacts, ink, pdf_pages, screenshot
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
