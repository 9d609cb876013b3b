"""The ledger's Ed25519 signing key: created once, used to sign auditor bundles.

The private key never leaves the operator (PEM, PKCS#8, mode 0600); the public key
(PEM, SubjectPublicKeyInfo) is what auditors are given. A key is named by its id, the
SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.errors import InputError, LedgerError, VerificationFailed

PRIVATE_FILE = "signing.key"
PUBLIC_FILE = "signing.pub"


def key_dir(home: Path) -> Path:
    return home / "keys"


def default_private_key(home: Path) -> Path:
    return Path(os.environ.get("GPULEDGER_SIGNING_KEY") or key_dir(home) / PRIVATE_FILE)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def init_keys(folder: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Create a new key pair in `folder`; refuse to replace one unless `force`."""
    private_path, public_path = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    if private_path.exists() and not force:
        raise LedgerError(
            f"a signing key already exists at {private_path}; bundles signed with it would no "
            "longer verify against a new one (use --force to replace it anyway)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    public_path.write_bytes(public_pem(private_key.public_key()))
    return private_path, public_path, key_id(private_key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise LedgerError(
            f"no signing key at {path}: create one with `gpuledger keys init`"
        ) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key")
    return key


def signed_chain_head(bundle: Path, public_key_path: str) -> tuple[str, int, str]:
    """(bundle, seq, hash) of the chain head a bundle's manifest signs, once its signature
    checks with the ledger's public key: what `verify --db --anchor` holds the journal to."""
    try:
        key = serialization.load_pem_public_key(Path(public_key_path).read_bytes())
        manifest_bytes = (bundle / "manifest.json").read_bytes()
        signature = base64.b64decode((bundle / "manifest.sig").read_bytes().strip(), validate=True)
    except (OSError, ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise InputError(f"cannot read the anchor {bundle}: {exc}") from exc
    try:
        key.verify(signature, manifest_bytes)
    except (InvalidSignature, TypeError, AttributeError) as exc:
        raise VerificationFailed(f"{bundle}/manifest.sig does not verify with {public_key_path}") from exc
    try:
        head = json.loads(manifest_bytes).get("chain_head") or {}
    except (ValueError, AttributeError):
        head = {}
    if not isinstance(head.get("seq"), int) or not isinstance(head.get("hash"), str):
        raise InputError(f"{bundle}/manifest.json has no chain head")
    return str(bundle), head["seq"], head["hash"]
