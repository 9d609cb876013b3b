"""Verify an auditor bundle with nothing but its files and the ledger's public key.

    python -m auditor.verify DIR --public-key KEY.pub

The checks run in the order of docs/auditor-bundle.md, "What verify checks", and the
first discrepancy is raised as `VerificationError` (a one-line message naming the file
and, where there is one, the 1-based line):

1. manifest.sig is the Ed25519 signature of manifest.json's exact bytes under the given
   key; manifest.json is well-formed and its key_id is the SHA-256 of that raw key;
2. every file manifest.json lists (the files of its format, /1 to /4) is present, of its
   size and SHA-256; no other file;
3. catalog.json is well-formed; every line of evidence.ndjson (streamed) is well-formed,
   sorted, has `seconds` bits set (/4: seconds in its runs), overlaps neither `elsewhere`
   nor the other lines (/4: runs) of its GPU and hour (/4: day), lies inside its service
   period, which is not after the bundle's;
   then (format /2 on) grants.json is well-formed; (format /3) corrections.json's voids
   are well-formed and each one's seconds are its parts' bits;
4. statement.json: its lines recomputed from the evidence and the catalog (split at
   version changes), then the grants' draws on them, (format /3) its returns from
   corrections.json, its invoices and credits, tax, grant draws and restorations, nets
   (reimbursements included) and transfers; then corrections.json's disputes;
5. journal.ndjson: the hash chain up to the manifest's chain_head, balanced entries,
   exactly the entries the statement implies, the trial balance and both sides of
   every member invoice and grant reimbursement;
6. dead_letters.json is well-formed, of the bundle's period, and adds up.

This module reads the files and runs the checks in that order. The rules of check 1
are auditor.manifest's; of check 3, auditor.catalog's, auditor.evidence's and
auditor.grants's; of check 4, auditor.statement's, auditor.grants's and
auditor.settlement's; of check 5, auditor.journal's. Checks 2 and 6 are here.

Nothing here is shared with the code that produced the numbers (no `ledger`, `streams`
or `schemas` import): only the standard library and `cryptography`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from auditor import evidence as hourly
from auditor import runs
from auditor.catalog import Catalog, parse_catalog
from auditor.corrections import parse_corrections
from auditor.disputes import check_disputes
from auditor.errors import VerificationError
from auditor.evidence import EvidenceResult
from auditor.grants import parse_grants
from auditor.journal import check_journal
from auditor.manifest import (
    CORRECTIONS,
    FORMAT_4,
    GRANTS,
    MANIFEST,
    SIGNATURE,
    Manifest,
    public_key,
    signed_manifest,
)
from auditor.statement import check_statement, parse_statement
from auditor.strictjson import JSONProblem, is_int, parse_document

__all__ = ["VerificationError", "main", "verify_bundle"]

LINE_DIGESTS = "line-digests.tsv"
REJECTION_REASONS = frozenset(
    {"malformed", "schema", "unknown_member", "unknown_sku", "future", "too_late", "unregistered_gpu",
     "no_price", "no_agreement", "conflict"}
)
_MANIFEST_LIMIT = 1 << 20
_CHUNK = 1 << 20


def verify_bundle(directory: Path, public_key_pem: bytes) -> None:
    """Verify the bundle in `directory` with the ledger's public key (PEM SubjectPublicKeyInfo).

    Returns None when every check passes; raises `VerificationError` at the first
    discrepancy.
    """
    _verify(Path(directory), public_key_pem)


# -- reading files -----------------------------------------------------------------------


def _read(folder: Path, name: str, limit: int | None = None) -> bytes:
    path = folder / name
    if not path.exists():
        raise VerificationError(f"{name}: missing from the bundle")
    if not path.is_file():
        raise VerificationError(f"{name}: not a regular file")
    try:
        with path.open("rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as exc:
        raise VerificationError(f"{name}: cannot be read ({exc.strerror})") from None
    if limit is not None and len(data) > limit:
        raise VerificationError(f"{name}: larger than {limit} bytes")
    return data


def _check_listed(folder: Path, name: str, expected: tuple[str, int]) -> bytes:
    """A listed file, whole: present, of the listed size and SHA-256."""
    path = folder / name
    if not path.exists():
        raise VerificationError(f"{name}: listed in {MANIFEST} but missing from the bundle")
    data = _read(folder, name)
    _compare_digest(name, len(data), hashlib.sha256(data).hexdigest(), expected)
    return data


def _check_streamed(folder: Path, name: str, expected: tuple[str, int]) -> None:
    """A listed file checked without holding it in memory."""
    path = folder / name
    if not path.is_file():
        raise VerificationError(f"{name}: listed in {MANIFEST} but missing from the bundle")
    hasher, size = hashlib.sha256(), 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise VerificationError(f"{name}: cannot be read ({exc.strerror})") from None
    _compare_digest(name, size, hasher.hexdigest(), expected)


def _locate(folder: Path, name: str) -> VerificationError | None:
    """The first line of `name` whose digest differs from the (verified) line digests.

    Called only once line-digests.tsv has matched the signed manifest, so its digests
    are the signed ones. None if no line can be singled out.
    """
    prefix = f"{name}\t".encode()
    try:
        with (folder / LINE_DIGESTS).open("rb") as digests, (folder / name).open("rb") as data:
            number = 0
            for entry in digests:
                if not entry.startswith(prefix):
                    if number:
                        break  # a file's digests are contiguous
                    continue
                number += 1
                line = data.readline()
                _, listed_number, listed_digest = entry.rstrip(b"\n").split(b"\t")
                if not line:
                    return VerificationError(
                        f"{name} line {number}: missing (the signed bundle has {number} or more lines)"
                    )
                digest = hashlib.sha256(line).hexdigest().encode()
                if digest != listed_digest or int(listed_number) != number:
                    return VerificationError(
                        f"{name} line {number}: differs from the signed bundle "
                        f"(its SHA-256 is {digest.decode()}, {LINE_DIGESTS} says {listed_digest.decode()})"
                    )
            if data.readline():
                return VerificationError(f"{name} line {number + 1}: not in the signed bundle (added)")
    except (OSError, ValueError):
        return None
    return None


def _compare_digest(name: str, size: int, digest: str, expected: tuple[str, int]) -> None:
    if size != expected[1]:
        raise VerificationError(f"{name}: {size} bytes, {MANIFEST} says {expected[1]}")
    if digest != expected[0]:
        raise VerificationError(f"{name}: SHA-256 is {digest}, {MANIFEST} says {expected[0]}")


def _lines(handle: BinaryIO, hasher, counter: list[int], limit: int) -> Iterator[bytes]:
    while True:
        # A line cut at the limit does not end with "\n": the evidence check refuses it.
        raw = handle.readline(limit)
        if not raw:
            return
        hasher.update(raw)
        counter[0] += len(raw)
        yield raw


def _evidence_pass(
    folder: Path, manifest: Manifest, catalog: Catalog | None
) -> tuple[EvidenceResult | None, VerificationError | None]:
    """Hash evidence.ndjson and, in the same single read, run the evidence checks.

    The file's size and SHA-256 (check 2) come first: a problem the evidence checks
    (check 3) find is returned, held, and reported only once every check 2 has passed.
    So the lines checked are exactly the bytes hashed, read once. Format /4 has runs
    per GPU and day (auditor.runs), the formats before bitmaps per GPU-hour (auditor.evidence).
    """
    name = "evidence.ndjson"
    expected = manifest.files[name]
    limit, check = ((runs.LINE_LIMIT, runs.check_runs) if manifest.format == FORMAT_4
                    else (hourly.LINE_LIMIT, hourly.check_evidence))
    path = folder / name
    if not path.exists():
        raise VerificationError(f"{name}: listed in {MANIFEST} but missing from the bundle")
    if not path.is_file():
        raise VerificationError(f"{name}: not a regular file")
    hasher = hashlib.sha256()
    counter = [0]
    result: EvidenceResult | None = None
    held: VerificationError | None = None
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size != expected[1]:
                raise VerificationError(
                    f"{name}: {os.fstat(handle.fileno()).st_size} bytes, {MANIFEST} says {expected[1]}"
                )
            if catalog is not None:
                lines = _lines(handle, hasher, counter, limit)
                try:
                    result = check(lines, manifest.period, catalog)
                except VerificationError as exc:
                    held = exc
                finally:
                    lines.close()
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                counter[0] += len(chunk)
    except OSError as exc:
        raise VerificationError(f"{name}: cannot be read ({exc.strerror})") from None
    _compare_digest(name, counter[0], hasher.hexdigest(), expected)
    return result, held


def _check_dead_letters(data: bytes, period: str) -> None:
    def fail(what: str) -> VerificationError:
        return VerificationError(f"dead_letters.json: {what}")

    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise fail(str(exc)) from None
    if not isinstance(document, dict) or document.keys() != {"period", "total", "by_reason"}:
        raise fail('is not {"period": P, "total": N, "by_reason": {...}}')
    if document["period"] != period:
        raise fail(f"period is {document['period']!r}, the manifest says {period}")
    total, by_reason = document["total"], document["by_reason"]
    if not is_int(total) or total < 0:
        raise fail("total is not an integer >= 0")
    if not isinstance(by_reason, dict):
        raise fail("by_reason is not an object")
    for reason, count in by_reason.items():
        if reason not in REJECTION_REASONS:
            raise fail(f"by_reason lists {reason!r}, which is not a rejection reason of SPEC.md")
        if not is_int(count) or count < 0:
            raise fail(f"by_reason[{reason!r}] is not an integer >= 0")
    if sum(by_reason.values()) != total:
        raise fail(f"total is {total}, but by_reason adds up to {sum(by_reason.values())}")


# -- the checks, in order ----------------------------------------------------------------


def _verify(folder: Path, public_key_pem: bytes) -> str:
    """All the checks; returns the bundle's period."""
    if not folder.is_dir():
        raise VerificationError(f"{folder}: not a directory")
    key = public_key(public_key_pem)

    # 1. The signature, then the manifest it covers and its key_id.
    manifest_bytes = _read(folder, MANIFEST, _MANIFEST_LIMIT)
    manifest = signed_manifest(key, manifest_bytes, _read(folder, SIGNATURE, 4096))
    period = manifest.period

    # 2. and 3. Every listed file, then the catalog and the evidence, then (format /2)
    #    the grants.
    contents, catalog, evidence = _check_files(folder, manifest)
    grants = parse_grants(contents[GRANTS], period, catalog) if GRANTS in contents else None
    corrections = parse_corrections(contents[CORRECTIONS], period, catalog) if CORRECTIONS in contents else None

    # 4. The statement, recomputed (with the draws of the grants, when the bundle has
    #    them). A second with no price or agreement in effect is the first thing rating finds.
    if evidence.deferred is not None:
        raise evidence.deferred
    statement = parse_statement(contents["statement.json"], period, catalog)
    check_statement(statement, evidence.usage, catalog, grants, corrections)
    if corrections is not None:
        check_disputes(corrections, period, catalog)

    # 5. The journal.
    check_journal(contents["journal.ndjson"], statement, manifest.chain_head)

    # 6. The dead-letter summary.
    _check_dead_letters(contents["dead_letters.json"], period)
    return period


def _check_files(
    folder: Path, manifest: Manifest
) -> tuple[dict[str, bytes], Catalog, EvidenceResult]:
    """Checks 2 and 3; returns the contents of the files read whole, the catalog, the evidence.

    Every listed file, in the order of the format's files; then no unlisted file. The evidence is
    hashed in the same read as check 3 runs over it; that check's (and the catalog's)
    first problem is held until check 2 is complete.
    """
    contents: dict[str, bytes] = {}
    held: VerificationError | None = None
    catalog: Catalog | None = None
    evidence: EvidenceResult | None = None
    for name in manifest.names:
        try:
            if name == LINE_DIGESTS:
                _check_streamed(folder, name, manifest.files[name])
            elif name != "evidence.ndjson":
                contents[name] = _check_listed(folder, name, manifest.files[name])
            else:
                catalog, evidence, held = _catalog_and_evidence(
                    folder, manifest, contents["catalog.json"]
                )
        except VerificationError as problem:
            if name == LINE_DIGESTS or not (folder / name).is_file():
                raise
            raise _locate(folder, name) or problem from None
    allowed = {MANIFEST, SIGNATURE, *manifest.names}
    for name in sorted(os.listdir(folder)):
        if name not in allowed:
            raise VerificationError(f"{name}: in the bundle but not listed in {MANIFEST}")
    if held is not None:
        raise held
    assert catalog is not None and evidence is not None
    return contents, catalog, evidence


def _catalog_and_evidence(
    folder: Path, manifest: Manifest, catalog_bytes: bytes
) -> tuple[Catalog | None, EvidenceResult | None, VerificationError | None]:
    """The catalog, then the evidence pass; the first problem of check 3 is returned, held."""
    catalog: Catalog | None = None
    held: VerificationError | None = None
    try:
        catalog = parse_catalog(catalog_bytes)
    except VerificationError as exc:
        held = exc
    evidence, evidence_problem = _evidence_pass(folder, manifest, catalog)
    return catalog, evidence, held or evidence_problem


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditor.verify",
        description="Verify a gpuledger auditor bundle with the ledger's Ed25519 public key.",
    )
    parser.add_argument("directory", type=Path, help="the bundle's folder")
    parser.add_argument("--public-key", required=True, type=Path,
                        help="the ledger's public key, a PEM SubjectPublicKeyInfo file")
    args = parser.parse_args(argv)
    try:
        try:
            pem = args.public_key.read_bytes()
        except OSError as exc:
            raise VerificationError(f"public key {args.public_key}: {exc.strerror}") from None
        period = _verify(args.directory, pem)
    except VerificationError as exc:
        print(f"verification failed: {exc.message}", file=sys.stderr)
        return 1
    print(f"verified: {args.directory} (period {period})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
