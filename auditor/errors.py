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


def object_with_keys(file: str, obj: object, required: set[str] | frozenset[str], where: str,
                     optional: set[str] | frozenset[str] = frozenset()) -> dict:
    """`obj` as a JSON object of exactly the `required` keys (and any of `optional`), or
    the first key missing or unexpected, named in `file`."""
    if not isinstance(obj, dict):
        raise VerificationError(f"{file}: {where} is not an object")
    for name in sorted(required - obj.keys()):
        raise VerificationError(f"{file}: {where}: the key {name!r} is missing")
    for name in sorted(obj.keys() - required - optional):
        raise VerificationError(f"{file}: {where}: unexpected key {name!r}")
    return obj
