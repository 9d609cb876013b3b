"""Property-based test of the usage API against the REAL service (schemathesis).

A fresh stack (`gpuledger dev up`: broker, PostgreSQL, a worker and the API) with the
scenario's catalog, an admin and a member token made with the CLI. For every operation of
the API's OpenAPI document, schemathesis sends generated requests (valid and invalid
ones, plus its coverage cases) to that running service, once with each token, and
requires:

- no 5xx, ever;
- the status code is documented for the operation;
- the body matches the documented schema of that status;
- the content type is the documented one.

The document is the one the service serves at /openapi.json (a test below compares
them byte for byte); it is built in process at import time, because pytest needs the
operations at collection, before any stack runs (and schemathesis' lazy
`pytest.from_fixture` loader does not work with pytest 9, which dropped `Node._nodeid`).

Bounded: at most 25 generated examples per operation, no deadline (the service is
real), so the module stays around a minute on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.http.app import create_app
from ledger.memory.store import MemoryStore
from ledger.settings import Settings
from tests.scenario import SCENARIOS

pytestmark = [pytest.mark.infra, pytest.mark.timeout(600)]

CATALOG = SCENARIOS / "alliance-2026-q3" / "catalog.toml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# POST /v1/catalog takes a TOML file as text: send generated strings as they are.
schemathesis.serializer.alias("application/toml", "text/plain")


def api_url(stack) -> str:
    return stack.env_values()["GPULEDGER_API_URL"].rstrip("/")


@pytest.fixture(scope="module")
def service(make_stack) -> dict:
    stack = make_stack()
    stack.run("catalog", "load", str(CATALOG))
    return {
        "url": api_url(stack),
        "tokens": {
            "member": stack.json("token", "create", "--member", "kddi")["token"],
            "admin": stack.json("token", "create", "--role", "admin")["token"],
        },
    }



async def in_memory() -> MemoryStore:
    return MemoryStore()


DOCUMENT = create_app(Settings(Path("."), None, None), open_store=in_memory).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_service_serves_this_document(service):
    served = httpx.get(f"{service['url']}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_its_openapi_document(case, service):
    for role in ("member", "admin"):
        case.call_and_validate(
            base_url=service["url"],
            headers={"Authorization": f"Bearer {service['tokens'][role]}"},
            checks=CHECKS,
            timeout=30,
        )


def test_the_document_lists_every_operation():
    operations = {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}
    assert {("GET", "/v1/usage"), ("GET", "/v1/statements/{period}"), ("POST", "/v1/events")} <= operations
