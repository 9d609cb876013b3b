"""GET /v1/documents/{period} and its files: the caller's invoices and reports of a period.

Scoped like statements (`ledger.domain.access.sees_document`): a member reads the invoices
it issued or received, its own settlement report and the capacity report; an auditor or
admin all. A file outside the caller's scope is a 404, exactly like one that does not
exist. Files are made when asked (a closed period's come out the same bytes every time),
in the document pool (`ledger.http.offload`), at most `documents_per_member` of one
member's at a time (`ledger.http.limits.MemberSlots`): one member asking for many queues
behind itself, not in front of the others.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from ledger.domain.errors import NotFound
from ledger.domain.periods import PERIOD_PATTERN
from ledger.http import tasks
from ledger.http.auth import Caller, LedgerState
from ledger.http.documents_media import MEDIA_TYPES
from ledger.http.errors import responses
from ledger.service import documents

router = APIRouter()


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


@router.get("/v1/documents/{period}", response_model=DocumentList, responses=responses(400, 429))
async def list_documents(who: Caller, ledger: LedgerState, period: str) -> Response:
    """The caller's documents of a period, as `gpuledger documents` lists them in manifest.json;
    each file is at /v1/documents/{period}/{path}."""
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    ledger.limiter.take(who, "documents")
    async with ledger.document_slots.slot(who):
        data = await ledger.document_pool.run(tasks.document_list, period, who)
    # Already DocumentList's shape (the manifest's): written as made, however many invoices.
    return Response(data, media_type="application/json")


@router.get(
    "/v1/documents/{period}/{path:path}", response_class=Response, responses={
        **responses(400, 429),
        200: {"content": {"text/html": {"schema": {"type": "string"}}, "application/pdf": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The document, as HTML or PDF"},
    },
)
async def get_document(who: Caller, ledger: LedgerState, period: str, path: str) -> Response:
    """One file of the caller's documents: `path` as listed (e.g. `capacity-report.pdf`)."""
    if not PERIOD_PATTERN.fullmatch(period):
        raise NotFound("no such period")
    documents.PeriodDocuments.kind_of(path)  # no such kind: 404 before any work
    ledger.limiter.take(who, "documents")
    async with ledger.document_slots.slot(who):
        data, suffix = await ledger.document_pool.run(tasks.document_file, period, who, path)
    name = path.rpartition("/")[2]
    return Response(data, media_type=MEDIA_TYPES[suffix], headers={"Content-Disposition": f'inline; filename="{name}"'})
