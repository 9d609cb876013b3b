"""`make demo` ends with the portal's address: the API's, as localhost (a secure context
for browsers, so the portal's Secure cookie works over plain HTTP on the local stack)."""

from __future__ import annotations

import pytest

from ledger.dev.demo import portal_address


def test_the_portal_is_the_apis_address_as_localhost():
    env = "GPULEDGER_DATABASE_URL=postgresql://x\nGPULEDGER_API_URL=http://127.0.0.1:43121\n"
    assert portal_address(env) == "http://localhost:43121/portal"


def test_without_an_api_it_says_so():
    with pytest.raises(SystemExit, match="API is not running"):
        portal_address("GPULEDGER_DATABASE_URL=postgresql://x\n")
