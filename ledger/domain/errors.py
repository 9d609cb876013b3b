"""The one error hierarchy of gpuledger.

Every failure a person can cause or meet (a bad file, a bad period, a service that does
not answer, a token that does not open a door) is a `LedgerError` with a one-line
message. Each class knows how it is reported: the CLI prints the line and exits with
`exit_code`; the usage API answers `http_status` with
`{"error": {"code": code, "message": ...}}`. Nothing else decides either, so the same
failure reads the same everywhere (an unreachable service is exit 3 and HTTP 503 on
every path). Driver errors (asyncpg, aiokafka) are translated into these by the one
adapter that imports each driver (`ledger.postgres.errors`, `streams.publish`).
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error gpuledger reports to a person."""

    exit_code = 1
    http_status = 500
    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # a finer name for API clients; status and exit code stay the class's


class InputError(LedgerError):
    """A file, argument or request body that cannot be used as given."""

    exit_code = 2
    http_status = 400
    code = "bad_request"


class CatalogError(InputError):
    """A catalog file that cannot be loaded (all or nothing: nothing was loaded)."""

    code = "bad_catalog"


class PeriodError(InputError):
    """A period that is malformed, or cannot be closed yet."""

    code = "bad_period"


class NotFound(InputError):
    """What does not exist, or what the caller may not see: the two are told apart by no one."""

    http_status = 404
    code = "not_found"


class Unauthorized(InputError):
    """No credentials, or credentials that are unknown, revoked or expired."""

    http_status = 401
    code = "unauthorized"


class Forbidden(InputError):
    """The caller is known and may see this, but may not do it."""

    http_status = 403
    code = "forbidden"


class TooLarge(InputError):
    """A request over one of the ledger's limits (bytes, events, dead letters)."""

    http_status = 413
    code = "too_large"


class UnsupportedMediaType(InputError):
    http_status = 415
    code = "unsupported_media_type"


class TooManyRequests(InputError):
    """A caller over its share: its token's rate of expensive requests, or its documents
    in progress. `retry_after_seconds`: when asking again can succeed."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after_seconds: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_seconds = max(1, retry_after_seconds)


class ServiceUnavailable(LedgerError):
    """Kafka or PostgreSQL could not be reached, or went away mid-operation."""

    exit_code = 3
    http_status = 503
    code = "unavailable"


class StoreBusy(ServiceUnavailable):
    """The store refused a transaction that may succeed when retried (a deadlock, a
    serialization failure, a lock not available, a concurrent replay)."""

    code = "busy"


class VerificationFailed(LedgerError):
    """The ledger's journal or an auditor bundle does not verify."""

    exit_code = 4
    http_status = 409
    code = "verification_failed"


class SchemaMissing(LedgerError):
    """The database has no gpuledger schema yet (`gpuledger db migrate`)."""

    exit_code = 3
    http_status = 503
    code = "no_schema"
