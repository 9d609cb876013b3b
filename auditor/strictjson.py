"""Strict JSON reading, and the canonical form the journal hashes.

Nothing in a bundle is a fractional number (prices are decimal strings, yen and basis
points are integers), so a number with a fraction or an exponent is refused outright,
as are NaN and Infinity, a name repeated within one object, and anything but UTF-8.
"""

from __future__ import annotations

import json
from typing import Any


class JSONProblem(ValueError):
    """Why a document is not acceptable JSON (no file name: callers add it)."""


def _refuse_float(text: str) -> Any:
    raise JSONProblem(f"the number {text} has a fraction or an exponent; only integers are allowed")


def _refuse_constant(text: str) -> Any:
    raise JSONProblem(f"{text} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise JSONProblem(f"the name {name!r} appears twice in one object")
            seen.add(name)
    return document


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_refuse_float, parse_constant=_refuse_constant
)


def parse(data: bytes) -> Any:
    """One JSON value from `data`, with no whitespace around it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONProblem(f"not UTF-8 (byte {exc.start})") from None
    if not text:
        raise JSONProblem("empty")
    if text[0] in " \t\r\n" or text[-1] in " \t\r\n":
        raise JSONProblem("whitespace before or after the JSON value")
    try:
        return _DECODER.decode(text)
    except JSONProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise JSONProblem(f"not acceptable JSON ({exc})") from None


def parse_document(data: bytes) -> Any:
    """A JSON file of the bundle: one value, then exactly one `\\n`."""
    if not data.endswith(b"\n"):
        raise JSONProblem("does not end with a newline")
    return parse(data[:-1])


def canonical(value: Any) -> bytes:
    """Keys sorted at every level, no spaces, non-ASCII kept as is, UTF-8."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise JSONProblem(f"has no canonical form ({exc})") from None


def same(a: Any, b: Any) -> bool:
    """Equality of JSON values that also compares types (1 is not true, not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def show(value: Any) -> str:
    """A short, one-line rendering of a JSON value for a message."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def is_int(value: Any) -> bool:
    """A JSON integer (a bool is not one)."""
    return type(value) is int
