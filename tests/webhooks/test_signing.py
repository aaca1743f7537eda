"""Signing and verifying deliveries (pure)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.webhooks import sign, signed_headers, validate_events, validate_url, verify_signature

SECRET = "s3cret"
BODY = b'{"event": "stage.changed", "id": "abc"}'
NOW = 1_767_225_600


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert f"v1={expected}" == sign(SECRET, NOW, BODY)


def test_round_trip() -> None:
    headers = signed_headers(SECRET, "stage.changed", 7, BODY, now=NOW)
    assert {"Covex-Event": "stage.changed", "Covex-Delivery": "7", "Covex-Timestamp": str(NOW)}.items() <= (
        headers.items()
    )
    assert verify_signature(SECRET, headers["Covex-Timestamp"], BODY, headers["Covex-Signature"], now=NOW + 10)
    assert verify_signature(SECRET, NOW, BODY.decode(), headers["Covex-Signature"], now=NOW)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body"),
    [
        ("other", NOW, BODY),  # wrong secret
        (SECRET, NOW, BODY.replace(b"stage", b"alias")),  # tampered body
        (SECRET, NOW + 1, BODY),  # tampered timestamp
    ],
)
def test_tampering_is_refused(secret: str, timestamp: int, body: bytes) -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify_signature(secret, timestamp, body, signature, now=NOW)


def test_old_or_future_timestamp_is_refused() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, NOW, BODY, signature, now=NOW + 301)
    assert not verify_signature(SECRET, NOW, BODY, signature, now=NOW - 301)
    assert verify_signature(SECRET, NOW, BODY, signature, tolerance=3600, now=NOW + 3000)


def test_malformed_headers_are_refused() -> None:
    assert not verify_signature(SECRET, "yesterday", BODY, sign(SECRET, NOW, BODY), now=NOW)
    assert not verify_signature(SECRET, NOW, BODY, "", now=NOW)
    assert not verify_signature(SECRET, NOW, BODY, "v0=" + sign(SECRET, NOW, BODY)[3:], now=NOW)


def test_any_listed_signature_may_match() -> None:
    header = f"v1=deadbeef, {sign(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, NOW, BODY, header, now=NOW)


def test_event_patterns() -> None:
    assert ["stage.changed", "request.*", "*"] == validate_events(["stage.changed", "request.*", "*", "*"])
    for bad in (["stage.moved"], ["nope.*"], [], "stage.changed", [3]):
        with pytest.raises(InvalidInput, match="'events'"):
            validate_events(bad)


@pytest.mark.parametrize("url", ["ftp://host/x", "http://", "/relative", "http://host:99999/", 5, "x" * 3000])
def test_bad_urls_are_invalid(url: object) -> None:
    with pytest.raises(InvalidInput, match="'url'"):
        validate_url(url)
