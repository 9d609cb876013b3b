"""The one exception the verifier raises."""

from __future__ import annotations


class VerificationError(Exception):
    """The first discrepancy found in a bundle.

    `message` is one line: the file, the 1-based line number when there is one, and
    what is wrong (`evidence.ndjson line 17: bits has 3599 seconds set, the line says 3600`).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
