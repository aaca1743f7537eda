"""Who is looking at a page: an API token kept in an HttpOnly, SameSite=Strict cookie, checked on every request.

Forms carry a CSRF token. Signed in, it is derived from the session's token (an HMAC of it), so only a page
that saw the session can know it: another site cannot read it, and a neighbour that can set cookies for this
host (another port, a sibling subdomain) cannot forge a matching pair. Signed out (the sign-in form, or a
``--no-auth`` server, where every visitor may act anyway) it equals a second cookie's value (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request, Response

from covex.domain.errors import PermissionDenied, Unauthenticated
from covex.server.guard import client_address
from covex.service import RegistryService

SESSION = "covex_session"
CSRF = "covex_csrf"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts in the browser (the token's own expiry still applies)


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser: bound to its session when signed in; else made on first use
    (``remember_csrf`` stores it)."""
    bound = _bound(request)
    if bound:
        return bound
    token = request.cookies.get(CSRF, "")
    if len(token) != 43:
        token = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return token


def remember_csrf(request: Request, response: Response) -> None:
    new = request.state.__dict__.get("new_csrf")
    if new:
        response.set_cookie(CSRF, new, max_age=MAX_AGE, httponly=True, samesite="strict", secure=_secure(request))


def _bound(request: Request) -> str:
    session = request.cookies.get(SESSION, "")
    if not session or not request.app.state.auth:
        return ""
    digest = hmac.new(session.encode(), b"covex-ui-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(request: Request, text: str) -> str:
    """A short signature of ``text`` only this browser's pages can make (for the one-time message cookie)."""
    key = csrf_token(request).encode()
    return base64.urlsafe_b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()[:18]).decode()


def check_csrf(request: Request, given: str) -> None:
    expected = _bound(request) or request.cookies.get(CSRF, "")
    if len(expected) != 43 or not hmac.compare_digest(expected.encode(), given.encode()):
        raise PermissionDenied("the form is stale or came from another site: reload the page and send it again")


def sign_in(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION, token, max_age=MAX_AGE, httponly=True, samesite="strict", secure=_secure(request))


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def viewer(request: Request) -> RegistryService:
    """The service acting as the signed-in user (with ``--no-auth``, as the local admin)."""
    base: RegistryService = request.app.state.service
    request_id: str = getattr(request.state, "request_id", "")
    if not request.app.state.auth:
        return base.as_principal(base.principal, request_id)
    token = request.cookies.get(SESSION) or None
    if token is None:  # not signed in: off to the sign-in page (a visit is not a refused call to audit)
        raise Unauthenticated("sign in to see this page")
    return base.with_credentials(token, request_id, source=client_address(request.scope))


Viewer = Annotated[RegistryService, Depends(viewer)]
