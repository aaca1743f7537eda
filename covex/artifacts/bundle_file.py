"""The promotion bundle file (``.cvxb``): one signed header, then the version's files.

Layout, every byte accounted for::

    COVEX-BUNDLE/1\\n
    8-byte big-endian length, then the header: canonical JSON (UTF-8)
    8-byte big-endian length, then the seal: {"key_id": ..., "signature": ...} over the header text
    each blob the header lists, in order, exactly its size
    (nothing after the last blob)

The header lists every blob by digest and size and is signed, the blobs are checked against
their digests, the lengths are checked against the file, and trailing bytes are refused, so a
change to any byte of the file is found.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import IO, Any

from covex.domain.errors import SignatureInvalid

MAGIC = b"COVEX-BUNDLE/1\n"
MAX_HEADER = 256 * 1024 * 1024
MAX_SEAL = 64 * 1024
CHUNK = 4 * 1024 * 1024


def head_bytes(header_text: str, seal: dict[str, str]) -> bytes:
    """Everything before the blobs."""
    header = header_text.encode()
    sealed = json.dumps(seal, sort_keys=True).encode()
    return MAGIC + len(header).to_bytes(8, "big") + header + len(sealed).to_bytes(8, "big") + sealed


def _exact(stream: IO[bytes], n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise SignatureInvalid(f"the bundle is cut short in its {what}")
    return data


class BundleReader:
    """Reads a bundle from a binary stream: ``head`` first, then ``blobs``, then ``finish``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def head(self) -> tuple[str, dict[str, Any]]:
        """The header text and its seal (checked for form only; the caller verifies the signature)."""
        if self.stream.read(len(MAGIC)) != MAGIC:
            raise SignatureInvalid("this is not a Covex bundle (.cvxb): its first bytes are wrong")
        size = int.from_bytes(_exact(self.stream, 8, "header length"), "big")
        if not 0 < size <= MAX_HEADER:
            raise SignatureInvalid(f"the bundle's header length {size} is not plausible")
        raw = _exact(self.stream, size, "header")
        seal_size = int.from_bytes(_exact(self.stream, 8, "seal length"), "big")
        if not 0 < seal_size <= MAX_SEAL:
            raise SignatureInvalid(f"the bundle's seal length {seal_size} is not plausible")
        try:
            text = raw.decode()
            seal = json.loads(_exact(self.stream, seal_size, "seal"))
        except (UnicodeDecodeError, ValueError):
            raise SignatureInvalid("the bundle's header or seal is not readable") from None
        if not isinstance(seal, dict) or not all(isinstance(seal.get(k), str) for k in ("key_id", "signature")):
            raise SignatureInvalid("the bundle's seal must name a key_id and a signature")
        return text, seal

    def blob(self, digest: str, size: int, *, check: bool = True) -> Iterator[bytes]:
        """One blob's bytes in chunks; with ``check``, raises when they do not hash to ``digest`` (without,
        the caller checks them, as the blob store does when it stores them)."""
        h = hashlib.sha256()
        left = size
        while left:
            chunk = self.stream.read(min(CHUNK, left))
            if not chunk:
                raise SignatureInvalid(f"the bundle is cut short in blob {digest[:12]}…")
            if check:
                h.update(chunk)
            left -= len(chunk)
            yield chunk
        if check and h.hexdigest() != digest:
            raise SignatureInvalid(f"blob {digest[:12]}… in the bundle does not match its digest (altered)")

    def finish(self) -> None:
        if self.stream.read(1):
            raise SignatureInvalid("the bundle has bytes after its last blob")
