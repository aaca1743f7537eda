"""/docs and /redoc work offline: every script, style sheet and icon comes from the package, without a token."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covex.server import create_app
from tests.conftest import Registry

PAGES = ["/docs", "/redoc"]
# What each kind of asset must be served as (browsers refuse scripts and style sheets served as anything else).
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl: '([^']*)'""")
STATIC = Path(__file__).resolve().parents[2] / "covex" / "server" / "static"


@pytest.fixture
def reg(registries) -> Registry:
    r: Registry = registries("http", "sqlite")
    return r


@pytest.fixture
def anonymous(reg: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        yield c


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", PAGES)
def test_pages_name_no_external_url(anonymous: httpx.Client, page: str) -> None:
    r = anonymous.get(page)
    assert (200, "text/html") == (r.status_code, r.headers["content-type"].partition(";")[0])
    assert [] == re.findall(r"(?:https?:)?//[\w.-]+", r.text)  # no CDN, no Google Fonts, no validator badge
    assert "/openapi.json" in references(r.text)


@pytest.mark.parametrize("page", PAGES)
def test_every_asset_a_page_names_is_served_without_a_token(anonymous: httpx.Client, page: str) -> None:
    urls = references(anonymous.get(page).text)
    assert len(urls) >= 2  # the script and the document at least
    for url in urls:
        r = anonymous.get(url)
        want = CONTENT_TYPES[Path(url).suffix]
        assert (200, want) == (r.status_code, r.headers["content-type"].partition(";")[0]), url
        assert len(r.content) > 100, url


def test_assets_are_the_packaged_files(anonymous: httpx.Client) -> None:
    for path in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css", "redoc/redoc.standalone.js"):
        assert (STATIC / path).read_bytes() == anonymous.get(f"/docs/assets/{path}").content


def test_licenses_ship_beside_the_assets() -> None:
    assert "Apache License" in (STATIC / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (STATIC / "redoc" / "LICENSE").read_text()
    versions = {d: json.loads((STATIC / d / "package.json").read_text())["version"] for d in ("swagger-ui", "redoc")}
    assert versions["swagger-ui"].startswith("5.") and versions["redoc"].startswith("2.")


def test_missing_asset_is_a_json_404(anonymous: httpx.Client) -> None:
    r = anonymous.get("/docs/assets/swagger-ui/nothing.js")
    assert (404, "RESOURCE_DOES_NOT_EXIST") == (r.status_code, r.json()["error_code"])


def test_the_docs_routes_are_not_in_the_api_document(anonymous: httpx.Client) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert [] == [p for p in paths if p.startswith(("/docs", "/redoc"))]


@pytest.mark.parametrize("page", PAGES)
def test_behind_a_proxy_prefix_the_pages_name_prefixed_urls(reg: Registry, page: str) -> None:
    transport = httpx.ASGITransport(create_app(reg.service, auth=True), root_path="/covex")  # no lifespan runs

    async def get() -> str:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return (await http.get(page)).text

    urls = references(asyncio.run(get()))
    assert urls and all(u.startswith("/covex/") for u in urls), urls


# -- in a real browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Only loopback resolves, and Chromium's own background traffic is off: the page gets nothing from outside.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=20000",
]


def rendered(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    argv = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert 0 == r.returncode, r.stderr[-2000:]
    return r.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test installs it where apt-get works)")
def test_swagger_ui_renders_every_path_in_a_browser(reg: Registry, anonymous: httpx.Client, tmp_path: Path) -> None:
    spec = anonymous.get("/openapi.json").json()
    dom = rendered(f"{reg.url}/docs", tmp_path)
    assert set(spec["paths"]) == set(re.findall(r'class="opblock-summary-path" data-path="([^"]*)"', dom))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test installs it where apt-get works)")
def test_redoc_renders_every_operation_in_a_browser(reg: Registry, anonymous: httpx.Client, tmp_path: Path) -> None:
    spec = anonymous.get("/openapi.json").json()
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values() if "operationId" in op}
    dom = rendered(f"{reg.url}/redoc", tmp_path)
    assert operations == set(re.findall(r'data-section-id="operation/([^"]*)"', dom))
