"""GET /v1/documents/{period} and its files: the caller's invoices and reports of a period.

Scoped like statements (`ledger.domain.access.sees_document`): a member reads the invoices
it issued or received, its own settlement report and the capacity report; an auditor or
admin all. A file outside the caller's scope is a 404, exactly like one that does not
exist. Files are made when asked (a closed period's come out the same bytes every time).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from ledger.domain.errors import NotFound
from ledger.domain.periods import PERIOD_PATTERN
from ledger.http.auth import Caller, LedgerState
from ledger.http.errors import responses
from ledger.service import documents

router = APIRouter()
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


class DocumentEntry(BaseModel):
    kind: str
    issuer: str | None
    recipient: str | None
    total_yen: int | None
    html: str
    pdf: str


class DocumentList(BaseModel):
    period: str
    documents: list[DocumentEntry]


@router.get("/v1/documents/{period}", response_model=DocumentList, responses=responses(400))
async def list_documents(who: Caller, ledger: LedgerState, period: str) -> dict:
    """The caller's documents of a period, as `gpuledger documents` lists them in manifest.json;
    each file is at /v1/documents/{period}/{path}."""
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    return (await documents.gather(ledger.store, period, who, wanted=set())).manifest()


def _render(content: dict, suffix: str) -> bytes:
    # Imported here for startup time: WeasyPrint and matplotlib take most of a second,
    # which the API should not pay before its first document.
    from ledger.documents import render

    page = render.html(content)
    return page.encode() if suffix == "html" else render.pdf(page)


@router.get(
    "/v1/documents/{period}/{path:path}", response_class=Response, responses={
        **responses(400),
        200: {"content": {"text/html": {"schema": {"type": "string"}}, "application/pdf": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The document, as HTML or PDF"},
    },
)
async def get_document(who: Caller, ledger: LedgerState, period: str, path: str) -> Response:
    """One file of the caller's documents: `path` as listed (e.g. `capacity-report.pdf`)."""
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    kind = documents.PeriodDocuments.kind_of(path)
    found = await documents.gather(ledger.store, period, who, wanted={kind})
    planned, suffix = found.find(path)
    content = found.content(planned)
    data = await asyncio.to_thread(_render, content, suffix)
    name = path.rpartition("/")[2]
    return Response(data, media_type=MEDIA_TYPES[suffix], headers={"Content-Disposition": f'inline; filename="{name}"'})
