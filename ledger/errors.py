"""The one error hierarchy of gpuledger.

Every failure a user can cause or meet (a bad file, a bad period, a service that does
not answer) is a `LedgerError` with a one-line message; the CLI prints that line and
exits with the error's `exit_code`, never a traceback. Driver errors (asyncpg, aiokafka)
are translated into these at the adapters.
"""


class LedgerError(Exception):
    """Base of every error gpuledger reports to a person."""

    exit_code = 1


class CatalogError(LedgerError):
    """A catalog file that cannot be loaded (all or nothing: nothing was loaded)."""

    exit_code = 2


class PeriodError(LedgerError):
    """A period that is malformed, or cannot be closed yet."""

    exit_code = 2


class InputError(LedgerError):
    """A file or argument that cannot be read."""

    exit_code = 2


class ServiceUnavailable(LedgerError):
    """Kafka or PostgreSQL could not be reached."""

    exit_code = 3
