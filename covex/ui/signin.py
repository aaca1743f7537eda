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
            await run_in_threadpool(checking.access.whoami)  # the token is valid and its user enabled
        except Unauthenticated as exc:
            return render(request, "sign_in.html", status=401, next=target, problem=exc.message)
    except CovexError as exc:
        return error_page(request, exc)
    response = RedirectResponse(target, status_code=303)
    session.sign_in(request, response, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        session.check_csrf(request, FormData(await read_form(request)).get("csrf", ""))
    except CovexError as exc:
        return error_page(request, exc)
    response = RedirectResponse("/sign-in", status_code=303)
    session.sign_out(response)
    return response
