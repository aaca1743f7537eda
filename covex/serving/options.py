"""How ``covex serve`` was asked to run: one typed object, read once and passed down (and to each worker)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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

    def client(self) -> Any:
        """A new client of the registry (``covex.Client``)."""
        from covex.client import Client
        from covex.settings import Settings

        return Client(settings=Settings(**self.registry))
