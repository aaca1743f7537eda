"""Governance over HTTP: the same methods as ``covex.service.approvals.ApprovalService``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from covex.client.http import _v, segment
from covex.client.http import model_path as _m
from covex.domain.names import validate_target
from covex.domain.policy import Comment, Placement, Policy, Rollback, TransitionRequest, scope_of
from covex.domain.scopes import AppliedPolicy

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

API = "/api/v1"


def _r(request_id: int) -> str:
    return f"{API}/requests/{int(request_id)}"


class HttpApprovals:
    """Policies, approval requests, comments, rollback and placement, on a Covex server."""

    def __init__(self, backend: HttpBackend) -> None:
        self._backend = backend

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._backend._call(method, path, **kwargs)

    def _policy_path(self, kind: str, target: str) -> str:
        kind, target = validate_target(kind, target, self._backend.stages)
        return f"{API}/policies/{segment(kind)}/{segment(target)}"

    # -- policies -------------------------------------------------------------------

    @staticmethod
    def _scope(model: str | None, tag: str | None) -> dict[str, str]:
        scope_of(model, tag)  # refused here as embedded, before any call
        return {k: v for k, v in (("model", model), ("tag", tag)) if v is not None}

    def set_policy(
        self, kind: str, target: str, body: Mapping[str, Any], *, model: str | None = None, tag: str | None = None
    ) -> Policy:
        path, params = self._policy_path(kind, target), self._scope(model, tag)
        return Policy.model_validate(self._call("PUT", path, json=dict(body), params=params))

    def apply_policy_file(self, text: str, replace: bool = False) -> list[Policy]:
        found = self._call("PUT", f"{API}/policies", json={"text": text, "replace": replace})
        return [Policy.model_validate(p) for p in found]

    def get_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> Policy:
        path, params = self._policy_path(kind, target), self._scope(model, tag)
        return Policy.model_validate(self._call("GET", path, params=params))

    def list_policies(self) -> list[Policy]:
        return [Policy.model_validate(p) for p in self._call("GET", f"{API}/policies")]

    def delete_policy(self, kind: str, target: str, *, model: str | None = None, tag: str | None = None) -> None:
        self._call("DELETE", self._policy_path(kind, target), params=self._scope(model, tag))

    def applicable_policies(self, name: str) -> list[AppliedPolicy]:
        return [AppliedPolicy.model_validate(p) for p in self._call("GET", f"{_m(name)}/-/policies")]

    # -- requests -------------------------------------------------------------------

    def create_request(
        self, name: str, version: int, *, stage: str | None = None, alias: str | None = None, comment: str = ""
    ) -> TransitionRequest:
        body = {"name": name, "version": version, "stage": stage, "alias": alias, "comment": comment}
        return TransitionRequest.model_validate(self._call("POST", f"{API}/requests", json=body))

    def get_request(self, request_id: int) -> TransitionRequest:
        return TransitionRequest.model_validate(self._call("GET", _r(request_id)))

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
        params: dict[str, Any] = {"max_results": max_results}
        given = (
            ("model", model),
            ("status", status),
            ("version", version),
            ("requester", requester),
            ("before", before),
        )
        params.update({k: v for k, v in given if v is not None})
        return [TransitionRequest.model_validate(r) for r in self._call("GET", f"{API}/requests", params=params)]

    def inbox(self) -> list[TransitionRequest]:
        return [TransitionRequest.model_validate(r) for r in self._call("GET", f"{API}/requests/inbox")]

    def approve(self, request_id: int, comment: str = "") -> TransitionRequest:
        return TransitionRequest.model_validate(
            self._call("POST", f"{_r(request_id)}/approve", json={"comment": comment})
        )

    def reject(self, request_id: int, comment: str = "") -> TransitionRequest:
        return TransitionRequest.model_validate(
            self._call("POST", f"{_r(request_id)}/reject", json={"comment": comment})
        )

    def cancel(self, request_id: int, comment: str = "") -> TransitionRequest:
        return TransitionRequest.model_validate(
            self._call("POST", f"{_r(request_id)}/cancel", json={"comment": comment})
        )

    # -- comments, rollback, placement ---------------------------------------------

    def add_comment(self, name: str, version: int, body: str) -> Comment:
        path = f"{_v(name, version)}/comments"
        return Comment.model_validate(self._call("POST", path, json={"body": body}))

    def list_comments(self, name: str, version: int) -> list[Comment]:
        path = f"{_v(name, version)}/comments"
        return [Comment.model_validate(c) for c in self._call("GET", path)]

    def rollback(self, name: str, *, stage: str | None = None, alias: str | None = None, comment: str = "") -> Rollback:
        body = {"stage": stage, "alias": alias, "comment": comment}
        return Rollback.model_validate(self._call("POST", f"{_m(name)}/-/rollback", json=body))

    def placement(
        self,
        name: str,
        *,
        stage: str | None = None,
        alias: str | None = None,
        at: int | str | datetime | None = None,
    ) -> Placement:
        params: dict[str, Any] = {k: v for k, v in (("stage", stage), ("alias", alias)) if v is not None}
        if at is not None:
            # A datetime goes as milliseconds: the server's local time zone must not matter.
            params["at"] = str(int(at.timestamp() * 1000)) if isinstance(at, datetime) else str(at)
        return Placement.model_validate(self._call("GET", f"{_m(name)}/-/placement", params=params))
