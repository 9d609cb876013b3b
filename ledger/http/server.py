"""Serving the API: uvicorn, quiet (the API's own metrics say what it answered), over TLS
when given a certificate and its key (production: tokens and usage never travel in clear)."""

from __future__ import annotations

import ssl

import uvicorn
from fastapi import FastAPI

from ledger.domain.errors import InputError


def server_options(host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None) -> dict:
    """uvicorn's settings: HTTPS with the certificate chain and key (PEM files) if given,
    else plain HTTP. A certificate without its key, or a pair that does not load, is
    refused here, in one line, before anything listens."""
    options: dict = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if tls_cert is None and tls_key is None:
        return options
    if tls_cert is None or tls_key is None:
        raise InputError("TLS needs both --tls-cert and --tls-key")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except OSError as exc:  # ssl.SSLError is one: not PEM, or a key of another certificate
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise InputError(f"cannot use {tls_cert} and {tls_key} for TLS: {reason}") from exc
    options.update(ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    return options


def serve(app: FastAPI, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    uvicorn.run(app, **server_options(host, port, tls_cert, tls_key))
