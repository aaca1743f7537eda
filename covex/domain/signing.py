"""Ed25519 signatures over canonical JSON: the registry's signer and the checks of what others signed.

A statement is a JSON object; what is signed is its canonical text (keys sorted, no spaces,
UTF-8), so the same statement always has the same bytes. Keys are named by their id: the first
16 hex digits of the SHA-256 of the raw 32-byte public key. Pure: no I/O (the private key's PEM
text is read by whoever builds the ``Signer``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, computed_field

from covex.domain.errors import InvalidInput
from covex.domain.policy import TransitionRequest

PROMOTION = "covex.promotion/v1"
MAX_KEY_TEXT = 4096


def canonical(body: Mapping[str, Any]) -> str:
    """The one text of a statement that is signed and stored."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Signer:
    """The registry's private key: signs statements as ``key_id``."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = _raw(private.public_key())
        self.public_key = base64.b64encode(raw).decode()
        self.key_id = key_id_of(raw)

    @property
    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, text: str) -> str:
        return base64.b64encode(self._private.sign(text.encode())).decode()


def generate() -> tuple[bytes, Signer]:
    """A new private key as PEM (PKCS#8, unencrypted: protect the file) and its signer."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, Signer(private)


def load_signer(pem: bytes, where: str) -> Signer:
    """The signer of a PEM private key; ``where`` names its source in the error."""
    try:
        private = serialization.load_pem_private_key(pem.strip() + b"\n", password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidInput(f"{where} holds a {type(private).__name__}; Covex signs with Ed25519 keys only")
    return Signer(private)


def public_key_of(text: object, field: str = "public_key") -> str:
    """A public key given as base64 of its 32 raw bytes or as a PEM public key, as base64 raw bytes."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_KEY_TEXT:
        raise InvalidInput(f"'{field}' must be an Ed25519 public key (base64 or PEM)")
    value = text.strip()
    try:
        if value.startswith("-----BEGIN"):
            public = serialization.load_pem_public_key(value.encode())
            if not isinstance(public, Ed25519PublicKey):
                raise InvalidInput(f"'{field}' is a {type(public).__name__}; Covex trusts Ed25519 keys only")
            return base64.b64encode(_raw(public)).decode()
        raw = base64.b64decode(value, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise InvalidInput(f"'{field}' is not an Ed25519 public key (base64 of 32 bytes, or PEM)") from None
    return base64.b64encode(raw).decode()


def key_id_of_text(public_key: str) -> str:
    return key_id_of(base64.b64decode(public_key))


def verifies(public_key: str, text: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s signature of ``text``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), text.encode())
    except (InvalidSignature, ValueError, binascii.Error, TypeError):
        return False
    return True


class SigningKey(BaseModel):
    """A public key this registry knows: its own (``origin`` own) or one it trusts (``trusted``)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    public_key: str
    name: str
    origin: Literal["own", "trusted"]
    created_at: int
    created_by: str


class Statement(BaseModel):
    """A signed statement about a version, with its exact signed text."""

    model_config = ConfigDict(frozen=True)

    id: int
    model: str
    version: int
    key_id: str
    body: str
    signature: str
    origin: Literal["signed", "imported"]
    created_at: int

    @property
    def content(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class StatementCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    key_id: str
    target: str
    signed_at: int | None = None
    valid: bool
    reason: str = ""


class Verification(BaseModel):
    """What ``covex verify`` found: every statement checked, every file hashed again."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    manifest_digest: str | None
    files_checked: int
    problems: list[str] = []
    statements: list[StatementCheck] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verified(self) -> bool:
        """Every file matches, every statement verifies, and at least one vouches for the version."""
        return not self.problems and bool(self.statements) and all(s.valid for s in self.statements)


def check_statement(
    statement: Mapping[str, Any], text: str, signature: str, key: SigningKey | None, expected: Mapping[str, Any]
) -> str:
    """Why a statement does not hold ("" when it does): an unknown key, a bad signature, or other facts."""
    if key is None:
        return f"signed by key {statement.get('key_id')!r}, which this registry does not trust"
    if not verifies(key.public_key, text, signature):
        return f"the signature does not verify with key {key.key_id}"
    if canonical(statement) != text:
        return "the statement is not in canonical form"
    for field, value in expected.items():
        if statement.get(field) != value:
            return f"the statement is for {field} {statement.get(field)!r}, not {value!r}"
    return ""


class BundleImport(BaseModel):
    """What an import made: the version, and what became of the stage asked for."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    bundle_digest: str
    key_id: str
    statements: int
    already_imported: bool = False
    source: str = ""  # model/version in the registry it came from
    stage: str | None = None  # the stage the version is in now
    request: TransitionRequest | None = None  # opened for the stage asked for
    stage_refused: str = ""  # why the stage asked for was refused (the version is imported all the same)


class Provenance(BaseModel):
    """Where an imported version came from: the bundle, the key that sealed it, and the history it carried
    (the source registry's audit records about the version and its latest scan there)."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    source: str
    bundle_digest: str
    key_id: str
    imported_at: int
    imported_by: str
    audit: list[dict[str, Any]] = []
    scan: dict[str, Any] | None = None
