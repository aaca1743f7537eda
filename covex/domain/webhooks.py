"""Webhooks: subscriptions, deliveries, and the signature receivers check (pure, no I/O).

Every delivery is a POST of the event's JSON with these headers::

    Covex-Event: stage.changed
    Covex-Delivery: 42                       (the delivery; retries keep it)
    Covex-Timestamp: 1767225600              (unix seconds, when this attempt was signed)
    Covex-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

The body's ``id`` names the event: delivery is at least once, so receivers drop ids they saw.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput
from covex.domain.names import validate_text
from covex.domain.netguard import host_problem

EVENTS: tuple[str, ...] = (
    "model.created",
    "model.renamed",
    "model.deleted",
    "version.created",
    "version.ready",
    "version.scanned",
    "version.deleted",
    "stage.changed",
    "alias.set",
    "alias.deleted",
    "request.created",
    "request.approved",
    "request.rejected",
    "request.cancelled",
    "request.applied",
    "deployment.started",
    "deployment.swapped",
    "deployment.failed",
    "deployment.stopped",
    "monitor.drift_detected",
    "monitor.performance_degraded",
    "monitor.recovered",
)
PREFIXES = tuple(sorted({e.split(".")[0] for e in EVENTS}))
DeliveryStatus = Literal["pending", "delivered", "failed"]
STATUSES: tuple[str, ...] = ("pending", "delivered", "failed")
SIGNATURE_VERSION = "v1"
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 1000
# Anything but the characters RFC 3986 allows in a URL (unreserved, reserved and '%').
_URL_FORBIDDEN = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


class Webhook(_Entity):
    """A subscription of a URL to events (``model`` None: events of every model). Never its secret."""

    id: int
    url: str
    events: list[str]
    model: str | None = None
    description: str = ""
    active: bool = True
    created_by: str = ""
    creation_timestamp: int


class NewWebhook(Webhook):
    """A webhook just created or re-keyed: ``secret`` is shown this once."""

    secret: str


class Attempt(_Entity):
    """One try at delivering: the receiver's status code, or the error that stopped it."""

    attempt: int
    timestamp: int
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


class Delivery(_Entity):
    """One event on its way to one webhook, with every attempt so far."""

    id: int
    webhook_id: int
    event_id: str
    event: str
    status: DeliveryStatus
    payload: dict[str, Any]
    next_attempt_at: int
    last_status_code: int | None = None
    last_error: str = ""
    creation_timestamp: int
    delivered_timestamp: int | None = None
    attempts: list[Attempt] = []


# -- validation -----------------------------------------------------------------------------


def validate_url(url: object) -> str:
    """An absolute http(s) URL with a host, in plain printable ASCII, without credentials.

    Strict because the URL is later sent on the wire and shown to everyone who may list the
    webhook: a CR/LF or space would be refused by the HTTP client at every delivery (or, in
    a laxer one, inject headers), non-ASCII hosts are spelt differently by different parsers,
    and ``user:pass@`` would put a password in the listing. Percent-encode the path and
    query, IDNA-encode the host (``xn--...``). Whether the host may be reached is decided at
    delivery, on the address it then resolves to (``covex.domain.netguard``).
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"'url' must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    bad = _URL_FORBIDDEN.search(url)
    if bad is not None:
        char = bad[0]
        what = "a space" if char == " " else f"the character {char!r} (U+{ord(char):04X})"
        raise InvalidInput(
            f"'url' must not contain {what}: use printable ASCII, percent-encode the path and query "
            "(%20 for a space) and IDNA-encode the host (xn--...)"
        )
    if _BAD_PERCENT.search(url):
        raise InvalidInput("'url' has a '%' that is not followed by two hex digits (write %25 for a literal '%')")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"'url' {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(f"'url' must be an http:// or https:// URL with a host, got {url!r}")
    if "@" in parts.netloc:
        raise InvalidInput(
            "'url' must not hold credentials (user:password@): everyone who may list the webhook would read them; "
            "receivers authenticate deliveries by their signature"
        )
    problem = host_problem(host)
    if problem is not None:
        raise InvalidInput(f"'url': {problem}")
    if port == 0:
        raise InvalidInput("'url': the port must be between 1 and 65535")
    return url


def validate_description(description: object) -> str:
    """Free text of at most ``MAX_DESCRIPTION`` characters (no NUL, valid Unicode)."""
    return validate_text(description, "description", MAX_DESCRIPTION)


def validate_events(events: object) -> list[str]:
    """Known event names, ``*`` (everything) or ``<prefix>.*`` (e.g. ``request.*``); at least one."""
    if isinstance(events, str) or not isinstance(events, list | tuple) or not events:
        raise InvalidInput("'events' must be a non-empty list of event names, '*' or 'prefix.*'")
    out: list[str] = []
    for event in events:
        if not isinstance(event, str) or not (
            event in EVENTS or event == "*" or (event.endswith(".*") and event[:-2] in PREFIXES)
        ):
            raise InvalidInput(
                f"'events': {event!r} is not an event; use '*', one of {', '.join(p + '.*' for p in PREFIXES)} "
                f"or one of {', '.join(EVENTS)}"
            )
        if event not in out:
            out.append(event)
    return out


# -- signing --------------------------------------------------------------------------------


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The ``Covex-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + _as_bytes(body), hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(
    secret: str, event: str, delivery_id: int | str, body: bytes | str, *, now: float | None = None
) -> dict[str, str]:
    """The headers of one delivery attempt, signed now."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": "covex-webhooks",
        "Covex-Event": event,
        "Covex-Delivery": str(delivery_id),
        "Covex-Timestamp": str(timestamp),
        "Covex-Signature": sign(secret, timestamp, body),
    }


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``signature`` (the ``Covex-Signature`` header) signs ``body`` with ``secret``.

    Pass the raw request body (not re-serialised JSON) and the ``Covex-Timestamp`` header.
    A timestamp more than ``tolerance`` seconds away from now is refused, so a captured
    request cannot be replayed later. The header may list several ``v1=`` values
    (comma-separated); any one matching is enough. Comparison is constant-time.

        from covex.domain.webhooks import verify_signature
        ok = verify_signature(secret, request.headers["Covex-Timestamp"], raw_body,
                              request.headers["Covex-Signature"])
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in str(signature).split(","))
