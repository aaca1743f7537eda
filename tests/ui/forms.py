"""Signing in to the UI over HTTP as a browser would (httpx keeps the cookies), and reading a page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import httpx


class HasUrl(Protocol):
    url: str


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
