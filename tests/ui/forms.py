"""A UI site to test (a server thread over a seeded registry), signing in over HTTP as a browser would (httpx
keeps the cookies), and reading a page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support


class HasUrl(Protocol):
    url: str


@dataclass(frozen=True)
class Site:
    url: str
    service: RegistryService
    admin: str  # an admin's API token
    stranger: str  # a user with no grants


@contextmanager
def running_site(root: Path, seed: Callable[[RegistryService], None]) -> Iterator[Site]:
    """A server with auth on, in this process, over a registry in ``root`` holding an admin, a user with no
    grants, and what ``seed`` makes."""
    settings = Settings(uri=str(root), user="admin")
    service = open_service(settings)
    admin = service.access.bootstrap("admin").secret
    service.access.create_user("stranger")
    stranger = service.access.create_token("stranger").secret
    seed(service)
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield Site(url, service, admin, stranger)
    service.close()


def csrf_of(page: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


@contextmanager
def signed_in(site: HasUrl, token: str, next: str = "/") -> Iterator[httpx.Client]:
    """A client signed in with ``token`` (the sign-in form sends it on to ``next``)."""
    with httpx.Client(base_url=site.url, timeout=30) as browser:
        form = browser.get("/sign-in")
        answer = browser.post("/sign-in", data={"token": token, "csrf": csrf_of(form.text), "next": next})
        assert (303, next) == (answer.status_code, answer.headers["location"])
        yield browser
