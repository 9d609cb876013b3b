"""Serving the API: uvicorn, quiet (the API's own metrics say what it answered)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
