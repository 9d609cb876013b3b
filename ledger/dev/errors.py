"""The development stack's one error, and how its messages quote a component's log.

Expected failures (binary missing, port in use, a process that dies on start-up) raise
`DevStackError` whose first line is a human-readable message. When a log explains the
failure, its last lines follow the message, indented.
"""

from __future__ import annotations

from pathlib import Path

from ledger.domain.errors import LedgerError

LOG_TAIL_LINES = 20


class DevStackError(LedgerError):
    """An expected failure of the development stack; the first line is the message.

    A LedgerError, so that the CLI reports it like every other user-facing failure.
    """


def tail_of_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of text, trailing blank lines left out."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines a log received after offset ("" if it cannot be read)."""
    try:
        with open(path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return tail_of_text(text, lines)


def with_tail(message: str, tail: str) -> DevStackError:
    """A DevStackError whose message is followed by the log lines that explain it."""
    if not tail.strip():
        return DevStackError(message)
    indented = "\n".join("    " + line for line in tail.splitlines())
    return DevStackError(f"{message}\n  last lines:\n{indented}")
