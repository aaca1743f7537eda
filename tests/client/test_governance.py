"""``client.access``, ``.approvals``, ``.audit`` and ``.webhooks``: one typed interface on every backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import covex
from covex.client.governance import Access, Approvals, Audit, Webhooks
from covex.client.http_access import HttpAccess
from covex.client.http_approvals import HttpApprovals
from covex.client.http_audit import HttpAudit
from covex.client.http_trust import HttpTrust
from covex.client.http_webhooks import HttpWebhooks
from covex.client.trust import Trust
from covex.service.access import AccessService
from covex.service.approvals import ApprovalService
from covex.service.audit import AuditService
from covex.service.trust import TrustService
from covex.service.webhooks import WebhookService
from tests.conftest import Registry

# Protocol, HTTP implementation, embedded implementation (the service itself), and the Client property.
AREAS: list[tuple[type[Any], type[Any], type[Any], str]] = [
    (Access, HttpAccess, AccessService, "access"),
    (Approvals, HttpApprovals, ApprovalService, "approvals"),
    (Audit, HttpAudit, AuditService, "audit"),
    (Webhooks, HttpWebhooks, WebhookService, "webhooks"),
    (Trust, HttpTrust, TrustService, "trust"),
]
IDS = [area for *_, area in AREAS]


def _methods(cls: type[Any]) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n)))


def _signature(cls: type[Any], method: str) -> inspect.Signature:
    """Names, kinds, defaults and annotations (evaluated: ``"str | None"`` and ``Optional[str]`` alike)."""
    return inspect.signature(getattr(cls, method), eval_str=True)


def _describe(signature: inspect.Signature) -> list[tuple[str, Any, Any, Any]]:
    params = [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]
    return [*params, ("return", None, None, signature.return_annotation)]


@pytest.mark.parametrize(("protocol", "http", "embedded", "area"), AREAS, ids=IDS)
def test_http_and_embedded_signatures_are_the_protocols(
    protocol: type[Any], http: type[Any], embedded: type[Any], area: str
) -> None:
    methods = _methods(protocol)
    assert methods, f"{protocol.__name__} declares no methods"
    for method in methods:
        expected = _describe(_signature(protocol, method))
        assert (expected, expected) == (
            _describe(_signature(http, method)),
            _describe(_signature(embedded, method)),
        ), f"{area}.{method}"


@pytest.mark.parametrize(("protocol", "http", "embedded", "area"), AREAS, ids=IDS)
def test_every_public_http_method_is_in_the_protocol(
    protocol: type[Any], http: type[Any], embedded: type[Any], area: str
) -> None:
    """What the HTTP client offers is typed; the service may offer more (bootstrap, streaming exports)."""
    assert _methods(http) == _methods(protocol)
    assert set(_methods(protocol)) <= set(_methods(embedded))


def test_a_changed_signature_is_noticed() -> None:
    class Drifted:
        def whoami(self, verbose: bool = False) -> covex.Model:  # an extra parameter, another return type
            raise NotImplementedError

    assert _describe(_signature(Access, "whoami")) != _describe(_signature(Drifted, "whoami"))


@pytest.mark.parametrize(("protocol", "http", "embedded", "area"), AREAS, ids=IDS)
def test_each_backend_hands_out_an_implementation(
    registry: Registry, protocol: type[Any], http: type[Any], embedded: type[Any], area: str
) -> None:
    with registry.client() as client:
        handed: Any = getattr(client, area)
        assert isinstance(handed, protocol)
        if registry.url.startswith("http"):
            assert http is type(handed)
        else:
            # Embedded, the area opens the registry on first use and then is the service's own object.
            opened = getattr(registry.service, area)
            assert (embedded, True) == (type(opened), isinstance(opened, protocol))


def test_the_same_calls_answer_alike_on_every_backend(registry: Registry) -> None:
    with registry.client() as client:
        calls: list[Callable[[], Any]] = [
            lambda: client.access.whoami().name,
            lambda: client.approvals.list_policies(),
            lambda: client.audit.verify().ok,
            lambda: client.webhooks.list_webhooks(),
        ]
        assert ["tester", [], True, []] == [call() for call in calls]
