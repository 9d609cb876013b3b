"""The one place where asyncpg's errors become gpuledger's (`ledger.domain.errors`).

Every operation of the adapter runs inside `translated()`, so nothing above this package
ever sees a driver exception: a retryable conflict is `StoreBusy`, a server that went
away (or never answered, or is shutting down, or has no connection slot left) is
`ServiceUnavailable`, a value PostgreSQL cannot hold is an `InputError`, a database
without the schema is `SchemaMissing`, and anything else PostgreSQL refuses is a
`LedgerError` naming what it said.
"""

from __future__ import annotations

import functools
from contextlib import asynccontextmanager

import asyncpg

from ledger.domain.errors import (
    InputError,
    LedgerError,
    SchemaMissing,
    ServiceUnavailable,
    StoreBusy,
)

BUSY = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.LockNotAvailableError)
UNAVAILABLE = (
    OSError,  # refused, reset, unreachable; ConnectionError is one
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # the connection was closed under the operation
    asyncpg.OperatorInterventionError,  # class 57: admin or crash shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
)


def describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def redact(database_url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = database_url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return database_url


def translate(exc: BaseException) -> LedgerError | None:
    """The gpuledger error for a driver error (None: not a driver error, leave it be)."""
    if isinstance(exc, BUSY):
        return StoreBusy(f"PostgreSQL: {describe(exc)}")
    if isinstance(exc, asyncpg.UndefinedTableError):
        return SchemaMissing(f"the database has no gpuledger schema ({exc}): run `gpuledger db migrate`")
    if isinstance(exc, UNAVAILABLE):
        return ServiceUnavailable(f"lost the connection to PostgreSQL: {describe(exc)}")
    if isinstance(exc, asyncpg.DataError):
        # A value PostgreSQL cannot take (a NUL character in a text filter): the caller's input.
        return InputError(f"PostgreSQL cannot store or compare this value: {describe(exc)}", code="bad_value")
    if isinstance(exc, asyncpg.PostgresError):
        return LedgerError(f"PostgreSQL refused the operation: {describe(exc)}")
    return None


@asynccontextmanager
async def translated():
    """Run a block with driver errors translated (see the module docstring)."""
    try:
        yield
    except LedgerError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


def translating(method):
    """An async method whose driver errors are translated."""

    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        async with translated():
            return await method(*args, **kwargs)

    return wrapper


def translating_iterator(method):
    """An async generator method whose driver errors are translated."""

    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        async with translated():
            async for item in method(*args, **kwargs):
                yield item

    return wrapper
