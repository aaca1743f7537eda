"""The areas of ``covex.Client``: one typed interface each, the same on every backend.

``client.access``, ``client.approvals``, ``client.audit``, ``client.webhooks`` and
``client.monitoring`` are, embedded,
the service's own objects (``covex.service.access.AccessService``...) and, over HTTP, the
``covex.client.http_*`` classes. Both satisfy these Protocols with identical signatures and raise
the same ``covex.errors`` classes, so code written against a Protocol runs on either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from covex.domain.access import Grant, Group, NewToken, Token, User
from covex.domain.audit import AuditRecord, ChainReport
from covex.domain.entities import Page
from covex.domain.monitoring import MonitorResult
from covex.domain.policy import Comment, Placement, Policy, Rollback, TransitionRequest
from covex.domain.scopes import AppliedPolicy
from covex.domain.webhooks import Delivery, NewWebhook, Webhook


@runtime_checkable
class Access(Protocol):
    """Users, service accounts, groups, API tokens and grants."""

    def whoami(self) -> User:
        """The user the client acts as."""
        ...

    def create_user(self, name: str, *, kind: str = "user", admin: bool = False) -> User:
        """Create a user or (``kind="service"``) a service account; admins only."""
        ...

    def list_users(self) -> list[User]:
        """Every user, by name."""
        ...

    def get_user(self, name: str) -> User:
        """One user with its groups."""
        ...

    def update_user(self, name: str, *, admin: bool | None = None, disabled: bool | None = None) -> User:
        """Grant or take admin rights, disable or enable a user; admins only."""
        ...

    def delete_user(self, name: str) -> None:
        """Delete a user with its tokens, memberships and grants; admins only."""
        ...

    def create_group(self, name: str, description: str = "") -> Group:
        """Create a group; admins only."""
        ...

    def delete_group(self, name: str) -> None:
        """Delete a group and its grants; admins only."""
        ...

    def list_groups(self) -> list[Group]:
        """Every group with its members."""
        ...

    def get_group(self, name: str) -> Group:
        """One group with its members."""
        ...

    def add_member(self, group: str, user: str) -> Group:
        """Put ``user`` in ``group``; admins only."""
        ...

    def remove_member(self, group: str, user: str) -> Group:
        """Take ``user`` out of ``group``; admins only."""
        ...

    def create_token(
        self, user: str | None = None, *, name: str = "", expires_in_days: float | None = None
    ) -> NewToken:
        """Create an API token for yourself, or (admins) for anyone; its secret is returned this once."""
        ...

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Your tokens, or (admins) anyone's; never their secrets."""
        ...

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token; it stops working at once."""
        ...

    def grant(self, subject: str, role: str, *, model: str | None = None, scope: str = "") -> Grant:
        """Give ``subject`` (``user:NAME``, ``group:NAME``) a role on ``model`` (None: every model)."""
        ...

    def revoke_grant(self, grant_id: int) -> None:
        """Remove a grant."""
        ...

    def list_grants(self, *, model: str | None = None, subject: str | None = None) -> list[Grant]:
        """Grants on one model (and on every model), or of one subject."""
        ...


@runtime_checkable
class Approvals(Protocol):
    """Stage and alias policies, approval requests, comments, rollback and placement history."""

    def set_policy(
        self, kind: str, target: str, body: Mapping[str, Any], *, model: str | None = None, tag: str | None = None
    ) -> Policy:
        """Create or replace a policy of a stage or alias: global, or for a model, name pattern or tag (admins)."""
        ...

    def apply_policy_file(self, text: str, replace: bool = False) -> list[Policy]:
        """Apply every policy of a YAML text, or none if any has an error; ``replace`` deletes the others."""
        ...

    def get_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> Policy:
        """The policy of a stage or alias for one scope (default: the global one)."""
        ...

    def list_policies(self) -> list[Policy]:
        """Every policy."""
        ...

    def delete_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> None:
        """Remove a policy (of one scope; default the global one); admins only."""
        ...

    def applicable_policies(self, name: str) -> list[AppliedPolicy]:
        """Which policy applies to each stage and alias of a model, and why."""
        ...

    def create_request(
        self, name: str, version: int, *, stage: str | None = None, alias: str | None = None, comment: str = ""
    ) -> TransitionRequest:
        """Ask to move a version into a protected stage or alias; its gates must pass now."""
        ...

    def get_request(self, request_id: int) -> TransitionRequest:
        """One request with its reviews and gate results."""
        ...

    def list_requests(
        self,
        model: str | None = None,
        status: str | None = None,
        *,
        version: int | None = None,
        requester: str | None = None,
        before: int | None = None,
        max_results: int = 100,
    ) -> list[TransitionRequest]:
        """Requests, newest first, of one model or of every model you may read; ``requester`` keeps one
        user's, ``before`` those with a smaller id (the next page after the request with that id)."""
        ...

    def inbox(self) -> list[TransitionRequest]:
        """OPEN requests you may approve and have not reviewed yet, oldest first."""
        ...

    def approve(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Approve a request; the move happens once it has enough approvals."""
        ...

    def reject(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Reject a request."""
        ...

    def cancel(self, request_id: int, comment: str = "") -> TransitionRequest:
        """Withdraw your own request."""
        ...

    def add_comment(self, name: str, version: int, body: str) -> Comment:
        """Comment on a version."""
        ...

    def list_comments(self, name: str, version: int) -> list[Comment]:
        """The comments on a version, oldest first."""
        ...

    def rollback(self, name: str, *, stage: str | None = None, alias: str | None = None, comment: str = "") -> Rollback:
        """Put back the version that held a stage or alias before the current one."""
        ...

    def placement(
        self,
        name: str,
        *,
        stage: str | None = None,
        alias: str | None = None,
        at: int | str | datetime | None = None,
    ) -> Placement:
        """Which version(s) held a stage or alias at ``at`` (default now), since when, who moved them and why."""
        ...


@runtime_checkable
class Audit(Protocol):
    """The tamper-evident audit trail: list, verify, export."""

    def list_records(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[AuditRecord]:
        """Records newest first; ``target`` and ``action`` ending in ``*`` match by prefix."""
        ...

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Recompute the hash chain; ``expect_head`` (``SEQ:HASH``, saved earlier) must still be part of it."""
        ...

    def export(self, out: str | os.PathLike[str] | IO[bytes] | IO[str]) -> int:
        """Write the trail as JSON Lines (then a head line) to a path or stream; return the record count."""
        ...

    @staticmethod
    def verify_file(source: str | os.PathLike[str] | IO[bytes] | IO[str]) -> ChainReport:
        """Verify an export offline: a path or an open stream."""
        ...


@runtime_checkable
class Webhooks(Protocol):
    """Webhook subscriptions and their delivery log."""

    def create_webhook(
        self, url: str, events: list[str], *, model: str | None = None, description: str = ""
    ) -> NewWebhook:
        """Subscribe ``url`` to ``events``; the returned ``secret`` signs every delivery and is shown once."""
        ...

    def list_webhooks(self, model: str | None = None) -> list[Webhook]:
        """The webhooks you manage, or those of one model."""
        ...

    def get_webhook(self, webhook_id: int) -> Webhook:
        """One webhook."""
        ...

    def update_webhook(
        self,
        webhook_id: int,
        *,
        active: bool | None = None,
        events: list[str] | None = None,
        url: str | None = None,
        description: str | None = None,
    ) -> Webhook:
        """Pause or resume a webhook, or change its events, URL or description."""
        ...

    def delete_webhook(self, webhook_id: int) -> None:
        """Delete a webhook with its queued deliveries and their log."""
        ...

    def rotate_secret(self, webhook_id: int) -> NewWebhook:
        """Replace the signing secret (the old one stops working at once); the new one is shown once."""
        ...

    def list_deliveries(
        self,
        webhook_id: int,
        status: str | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Delivery]:
        """A webhook's deliveries, newest first, each with its attempts."""
        ...

    def redeliver(self, delivery_id: int) -> Delivery:
        """Queue a delivery again, due now."""
        ...


if TYPE_CHECKING:
    # mypy proves here that both backends satisfy the Protocols (the tests compare their signatures).
    from covex.client.http_access import HttpAccess
    from covex.client.http_approvals import HttpApprovals
    from covex.client.http_audit import HttpAudit
    from covex.client.http_webhooks import HttpWebhooks
    from covex.service.access import AccessService
    from covex.service.approvals import ApprovalService
    from covex.service.audit import AuditService
    from covex.service.webhooks import WebhookService

    _HTTP: tuple[type[Access], type[Approvals], type[Audit], type[Webhooks]] = (
        HttpAccess,
        HttpApprovals,
        HttpAudit,
        HttpWebhooks,
    )
    _EMBEDDED: tuple[type[Access], type[Approvals], type[Audit], type[Webhooks]] = (
        AccessService,
        ApprovalService,
        AuditService,
        WebhookService,
    )

__all__ = ["Access", "Approvals", "Audit", "Webhooks"]


@runtime_checkable
class Monitoring(Protocol):
    """Monitor configs, drift references and check results (the checks run in ``covex.monitoring``)."""

    def set_monitor_config(self, name: str, text: str) -> str:
        """Set a model's monitor config (YAML, validated: every problem names its line; "" resets it)."""
        ...

    def get_monitor_config(self, name: str) -> str:
        """A model's monitor config as written ("" when the defaults apply)."""
        ...

    def set_reference(self, name: str, version: int, reference: Mapping[str, Any]) -> dict[str, Any]:
        """Store or replace a version's drift reference (``covex.monitoring.build_reference`` makes one)."""
        ...

    def record_result(
        self,
        name: str,
        version: int,
        *,
        status: str,
        source: str,
        rows: int,
        body: Mapping[str, Any],
        window_start: int | None = None,
        window_end: int | None = None,
    ) -> MonitorResult:
        """Record one check of a version; a change of status is audited and announced by webhook."""
        ...

    def list_results(self, name: str, version: int | None = None, *, max_results: int = 100) -> list[MonitorResult]:
        """A model's (or one version's) results, newest first."""
        ...

    def get_result(self, result_id: int) -> MonitorResult:
        """One result by id."""
        ...

    def monitor_status(self, name: str | None = None) -> list[MonitorResult]:
        """The latest result of each version (of one model, or of every model you read)."""
        ...
