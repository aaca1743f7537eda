"""How ``covex serve`` was asked to run: one typed object, read once and passed down (and to each worker)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from covex.serving.challenger import DEFAULT_SHADOW_QUEUE

DEFAULT_MAX_BODY = 8 * 1024 * 1024
OPTIONS_ENV = "COVEX_SERVE_OPTIONS"


class ServeOptions(BaseModel):
    """What one scoring server serves, from which registry, and with which limits."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field(description="models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/7 or models:/NAME/latest")
    registry: dict[str, Any] = Field(
        default_factory=dict, description="Settings values for the registry client (uri, artifacts, token, ...)"
    )
    poll_seconds: float = Field(default=5.0, gt=0, description="how often to look where the URI points")
    max_body: int = Field(default=DEFAULT_MAX_BODY, ge=1, description="largest request body, bytes (413)")
    token: str | None = Field(default=None, description="bearer token the scoring endpoints require; None: open")
    webhook_secret: str | None = Field(default=None, description="secret that signs the registry's webhook calls")
    log_inferences: str | None = Field(default=None, description="folder for the inference log; None: off")
    log_queue: int = Field(default=10_000, ge=1, description="inference log records waiting at most")
    log_batch_seconds: float = Field(default=2.0, gt=0, description="how often the inference log writes a file")
    record_target: str | None = Field(
        default=None, description="the address the registry's deployment record gives; None: record nothing"
    )
    heartbeat_seconds: float = Field(default=30.0, gt=0, description="how often the deployment record is renewed")
    shadow: str | None = Field(
        default=None, description="a models:/ URI scored after each answer, its predictions only logged; None: none"
    )
    shadow_queue: int = Field(
        default=DEFAULT_SHADOW_QUEUE, ge=1, description="answered requests waiting for the shadow"
    )
    split: str | None = Field(
        default=None, description="a models:/ URI answering split_percent% of requests; None: none"
    )
    split_percent: float = Field(default=0.0, ge=0, lt=100, description="the share of requests the split URI answers")
    split_key: str | None = Field(
        default=None, description="header whose value sticks a caller to one side of the split; None: random"
    )
    explain: bool = Field(default=False, description="answer POST /explain with SHAP contributions")

    @model_validator(mode="after")
    def _one_challenger(self) -> ServeOptions:
        if self.shadow is not None and self.split is not None:
            raise ValueError("give a shadow or a split, not both")
        if self.shadow is not None and not self.log_inferences:
            raise ValueError("a shadow needs log_inferences: its predictions are only written to the inference log")
        if self.split is not None and not 0 < self.split_percent < 100:
            raise ValueError("split_percent must be more than 0 and less than 100")
        return self

    def client(self) -> Any:
        """A new client of the registry (``covex.Client``)."""
        from covex.client import Client
        from covex.settings import Settings

        return Client(settings=Settings(**self.registry))
