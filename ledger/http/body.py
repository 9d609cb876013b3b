"""Reading request bodies within the API's limits."""

from __future__ import annotations

from fastapi import Request

from ledger.domain.errors import TooLarge


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"at most {limit} bytes per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"at most {limit} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)
