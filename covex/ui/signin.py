"""Signing in with an API token, and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from covex.domain.errors import CovexError, Unauthenticated
from covex.server.guard import client_address
from covex.ui import session
from covex.ui.web import FormData, error_page, read_form, render, safe_next

router = APIRouter(include_in_schema=False)
SESSION_TOKEN = "web UI session"  # the name of the token each sign-in makes (tokens lists show it)


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "/") -> Response:
    return render(request, "sign_in.html", next=safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    try:
        form = FormData(await read_form(request))
        session.check_csrf(request, form.get("csrf", ""))
        token, target = form.text("token"), safe_next(form.get("next", "/"))
        checking = request.app.state.service.with_credentials(token or None, source=client_address(request.scope))
        try:
            # The session gets a token of its own, ending with it: signing out revokes it, and a copied
            # cookie is not the long-lived token the user typed.
            made = await run_in_threadpool(
                checking.access.create_token, None, name=SESSION_TOKEN, expires_in_days=session.MAX_AGE / 86400
            )
        except Unauthenticated as exc:
            return render(request, "sign_in.html", status=401, next=target, problem=exc.message)
    except CovexError as exc:
        return error_page(request, exc)
    await run_in_threadpool(_end_session, request)  # a sign-in over another ends that one
    response = RedirectResponse(target, status_code=303)
    session.sign_in(request, response, made.secret)
    return response


def _end_session(request: Request) -> None:
    """Revoke the token of this browser's session, if it has one still valid."""
    token = request.cookies.get(session.SESSION)
    if not token or not request.app.state.auth:
        return
    try:
        ending = request.app.state.service.with_credentials(token, source=client_address(request.scope))
        if ending.principal.token_id is not None:
            ending.access.revoke_token(ending.principal.token_id)
    except CovexError:
        pass  # expired, revoked or not a token: nothing left to end


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        session.check_csrf(request, FormData(await read_form(request)).get("csrf", ""))
        await run_in_threadpool(_end_session, request)
    except CovexError as exc:
        return error_page(request, exc)
    response = RedirectResponse("/sign-in", status_code=303)
    session.sign_out(response)
    return response
