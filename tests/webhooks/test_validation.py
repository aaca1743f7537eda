"""Webhook URLs and descriptions are checked strictly when created and changed, on every backend."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import covex
from covex.domain.errors import InvalidInput
from covex.domain.webhooks import validate_url
from tests.conftest import Registry

URL = "https://hooks.example.com/covex"

BAD_URLS = [
    "https://hooks.example.com/x\r\nX-Injected: 1",  # header injection
    "https://hooks.example.com/x\n",
    "https://hooks.example.com/\tx",
    "https://hooks.example.com/x\x00",
    "https://hooks.example.com/a b",
    "https://hooks.example.com/\x7f",
    "https://hooks.example.com/\x1b[31m",
    "https://hooks.example.com/caf\u00e9",  # not percent-encoded
    "https://b\u00fccher.example/",  # not IDNA-encoded
    "https://hooks.example.com/\u2028",
    "https://hooks.example.com/a\\b",
    "https://hooks.example.com/%zz",
    "https://user:secret@hooks.example.com/x",  # shown to everyone who lists webhooks
    "https://token@hooks.example.com/x",
    "http://2130706433/x",  # 127.0.0.1 in disguise: numeric hosts only as dotted quads
    "http://0x7f.1/x",
    "http://127.000.000.001/x",
    "http://hooks..example.com/x",
    "http://-hooks.example.com/x",
    "http://hooks.example.com:0/x",
    "http://[::1/x",
]


@pytest.mark.parametrize("url", ["ftp://host/x", "http://", "/relative", "http://host:99999/", 5, "x" * 3000, ""])
def test_malformed_urls_are_invalid(url: object) -> None:
    with pytest.raises(InvalidInput, match="'url'"):
        validate_url(url)


@pytest.mark.parametrize("url", BAD_URLS)
def test_control_characters_credentials_and_odd_hosts_are_invalid(url: str) -> None:
    with pytest.raises(InvalidInput, match="'url'"):
        validate_url(url)


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "http://hooks.example.com:8080/a/b?x=1&y=%20z#frag",
        "https://xn--bcher-kva.example/caf%C3%A9",
        "http://[2001:db8::1]:8080/hook",
        "http://192.0.2.10/hook",
        "http://127.0.0.1:9/x",  # valid; whether it may be reached is decided at delivery
        "https://HOOKS.example.com./x",
        "http://my_host.internal/x",
    ],
)
def test_good_urls_are_kept_as_given(url: str) -> None:
    assert url == validate_url(url)


@pytest.mark.parametrize("url", BAD_URLS[:3] + BAD_URLS[7:9] + BAD_URLS[12:13])
def test_create_and_update_refuse_bad_urls(client: covex.Client, url: str) -> None:
    with pytest.raises(covex.InvalidInput, match="'url'"):
        client.webhooks.create_webhook(url, ["*"])
    hook = client.webhooks.create_webhook(URL, ["*"])
    with pytest.raises(covex.InvalidInput, match="'url'"):
        client.webhooks.update_webhook(hook.id, url=url)
    assert [URL] == [w.url for w in client.webhooks.list_webhooks()]


def test_the_api_answers_400_naming_the_url(registries: Callable[[str, str], Registry]) -> None:
    registry: Registry = registries("http", "sqlite")
    registry.reset()
    headers = {"Authorization": f"Bearer {registry.settings.token}"}
    with httpx.Client(base_url=registry.url, headers=headers) as http:
        r = http.post("/api/v1/webhooks", json={"url": f"{URL}\r\nX-Injected: 1", "events": ["*"]})
        assert 400 == r.status_code and "'url'" in r.json()["message"]
        hook = http.post("/api/v1/webhooks", json={"url": URL, "events": ["*"]}).json()
        r = http.patch(f"/api/v1/webhooks/{hook['id']}", json={"url": "https://u:p@hooks.example.com/"})
        assert 400 == r.status_code and "credentials" in r.json()["message"]


@pytest.mark.parametrize(
    ("description", "problem"),
    [("deploys\x00", "NUL"), ("x" * 1001, "the limit is 1000"), ("\ud800", "lone surrogate"), (5, "string")],
)
def test_bad_descriptions_are_refused_naming_the_field(client: covex.Client, description: object, problem: str) -> None:
    with pytest.raises(covex.InvalidInput, match="'description'") as caught:
        client.webhooks.create_webhook(URL, ["*"], description=description)
    assert problem in str(caught.value)
    hook = client.webhooks.create_webhook(URL, ["*"], description="deploys\nto production")
    with pytest.raises(covex.InvalidInput, match="'description'"):
        client.webhooks.update_webhook(hook.id, description=description)
    assert "deploys\nto production" == client.webhooks.get_webhook(hook.id).description
