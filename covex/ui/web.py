"""What every page and form shares: the templates, rendering with security headers, error pages, forms.

- A GET page is a sync handler wrapped in ``@page``: Covex errors become error pages, never JSON.
- A form handler takes ``form: Form``: the urlencoded body, read once, its CSRF token already checked.
  It ends with ``done(url, message)``: a 303 back to a page that shows the message once (a flash cookie).
- ``render(request, template, svc, ...)`` passes the viewer (``me``: name, admin, groups) to the template,
  so templates show only what the viewer may do; the service refuses it anyway if a form is forced.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from covex import __version__
from covex.domain.errors import CovexError, InvalidInput, Unauthenticated
from covex.server.errors import is_ui_path as is_ui_path  # re-exported: covex.ui.is_ui_path
from covex.service import RegistryService
from covex.ui import session

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"
PAGE_SIZE = 50
MAX_FORM_BYTES = 256 * 1024  # a policy file or a card is the largest thing a form sends
FLASH = "covex_flash"
# CommonMark without raw HTML: the author's text is escaped, and links with a script scheme are dropped.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
)
templates.globals.update(version=__version__, static=STATIC_URL)
templates.filters.update(
    utc=lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    urlpath=lambda name: quote(name, safe="/"),
    prepend=lambda text, prefix: f"{prefix}{text}",
    markdown=lambda text: Markup(_markdown.render(text or "")),
    plain=lambda text: Markup(_markdown.render(text or "")).striptags(),  # Markdown read as text, for a summary
)


def mount_static(app: Any) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="ui-static")


def render(
    request: Request, template: str, svc: RegistryService | None = None, status: int = 200, **context: Any
) -> HTMLResponse:
    """One page: the template with the viewer, the CSRF token and any message left by the last form."""
    me = svc.principal if svc is not None else None
    flash = _flash(request)
    if request.method == "POST":
        # The answer to a form: the browser's address becomes a page's (the one given, else the form's own
        # page), so reloading fetches that page instead of sending the form again (a second token, say).
        context.setdefault("settle", _same_site_referer(request) or "/")
    html = templates.get_template(template).render(
        request=request,
        me=me,
        user=me.name if me else None,
        may_audit=svc is not None and svc.audit.may_read(),
        csrf=session.csrf_token(request),
        auth=request.app.state.auth,
        flash=flash,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    session.remember_csrf(request, response)
    if FLASH in request.cookies:
        response.delete_cookie(FLASH)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"  # pages show what the viewer may see; never cache them
    return response


def _same_site_referer(request: Request) -> str:
    """The path (and query) of the page that sent this request, when it is a page of this site."""
    try:
        parts = urlsplit(request.headers.get("referer", "")[:2048])
    except ValueError:  # not a URL (an unbalanced IPv6 bracket, say)
        return ""
    if parts.scheme not in ("http", "https") or parts.netloc != request.url.netloc:
        return ""
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def error_page(request: Request, error: CovexError) -> Response:
    """An error as a page: signing in again when the token is missing or no longer valid."""
    if isinstance(error, Unauthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
    back = request.headers.get("referer", "")
    return render(request, "error.html", _viewer_or_none(request), status=error.status, error=error, back=back)


def _viewer_or_none(request: Request) -> RegistryService | None:
    """Who is signed in, for an error page's header (nobody when that cannot be told)."""
    base: RegistryService = request.app.state.service
    if not request.app.state.auth:
        return base
    token = request.cookies.get(session.SESSION)
    if not token:
        return None
    try:
        viewer = base.with_credentials(token)
        viewer.principal  # noqa: B018 - authenticates now, so a bad token is caught here
        return viewer
    except CovexError:
        return None


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """A page or form handler whose Covex errors become error pages (never JSON, never a traceback)."""

    @functools.wraps(handler)
    def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(request, *args, **kwargs)
        except CovexError as exc:
            return error_page(request, exc)

    return run


def done(request: Request, url: str, message: str = "") -> Response:
    """After a form: back to a page (303, so reloading it does not send the form again), with a message."""
    response = RedirectResponse(safe_next(url), status_code=303)
    if message:
        message = message[:500]
        signed = f"{session.sign(request, message)}.{quote(message)}"
        response.set_cookie(FLASH, signed, max_age=60, httponly=True, samesite="strict")
    return response


def _flash(request: Request) -> str:
    """The message the last form left, when this browser's pages signed it (never one a neighbour planted)."""
    if request.app.state.auth and not request.cookies.get(session.SESSION):
        return ""  # only a session's own pages leave messages; signed out, a neighbour could plant one
    signature, _, text = request.cookies.get(FLASH, "").partition(".")
    message = unquote(text)
    if not message or not hmac.compare_digest(signature.encode(), session.sign(request, message).encode()):
        return ""
    return message


@dataclass(frozen=True)
class Slice:
    """One page of a list the service answers whole (users, tokens, grants, groups): ``PAGE_SIZE`` items."""

    items: list[Any]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def page_of(items: Sequence[Any], page: str, query: str = "") -> Slice:
    """Page ``page`` (1-based, from the query string) of ``items`` whose text holds ``query`` (case-insensitive)."""
    if query:
        wanted = query.casefold()
        items = [item for item in items if wanted in str(getattr(item, "name", item)).casefold()]
    number = int(page) if page.isascii() and page.isdigit() and len(page) < 10 else 1
    last = max(1, -(-len(items) // PAGE_SIZE))
    number = min(max(number, 1), last)
    return Slice(list(items[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]), number, len(items))


def safe_next(target: str) -> str:
    # Only a path on this site: never an absolute URL another site could send a user to.
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


async def read_form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form of bounded size (the UI's forms hold short fields, at most a policy file)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise InvalidInput(f"a form may hold at most {MAX_FORM_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # stop reading at the limit, not after the whole body
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise InvalidInput(f"a form may hold at most {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    return parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True)


class FormData(dict[str, str]):
    """A submitted form: one value per field (the last), and ``all(field)`` for repeated fields."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__({k: v[-1] for k, v in fields.items()})
        self._fields = fields

    def all(self, field: str) -> list[str]:
        return list(self._fields.get(field, []))

    def text(self, field: str) -> str:
        return self.get(field, "").strip()


async def checked_form(request: Request) -> FormData:
    """The form of a POST whose CSRF token matches this browser's: anything else is refused (403)."""
    form = FormData(await read_form(request))
    session.check_csrf(request, form.get("csrf", ""))
    return form


Form = Annotated[FormData, Depends(checked_form)]
