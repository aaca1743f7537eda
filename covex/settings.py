"""One typed settings object, read once at start-up (environment prefix ``COVEX_``)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_STAGES = ["None", "Dev", "Test", "Production", "Archived"]
DEFAULT_DATA_DIR = "./covex-data"
# MLflow's fixed stages -> Covex's default ones.
DEFAULT_MLFLOW_STAGES = {"None": "None", "Staging": "Test", "Production": "Production", "Archived": "Archived"}


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


class Settings(BaseSettings):
    """Where Covex keeps its data, and how it behaves.

    ``uri`` is one of: a folder (embedded SQLite + local artifacts), a SQLAlchemy
    database URL (``sqlite:///...``, ``postgresql+psycopg://...``), or the URL of a
    Covex server (``http://host:8080``).
    """

    model_config = SettingsConfigDict(env_prefix="COVEX_", extra="ignore")

    uri: str = DEFAULT_DATA_DIR
    artifacts: str | None = Field(default=None, description="fsspec URL for blobs; default <data dir>/artifacts")
    artifacts_options: dict[str, Any] = Field(
        default_factory=dict, description='fsspec storage options as JSON, e.g. {"endpoint_url": "http://minio:9000"}'
    )
    token: str | None = None
    auth: bool = Field(default=True, description="a server requires API tokens; false only for local experiments")
    user: str = Field(default_factory=_default_user)
    stages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    host: str = "127.0.0.1"
    port: int = 8080
    cache_dir: str = Field(default="~/.cache/covex", description="where load_model keeps verified model files")
    chunk_size: int = 1024 * 1024
    http_timeout: float = 300.0
    dispatch_interval: float = Field(default=0.5, description="webhook outbox poll, seconds; 0: no sending")
    # -- limits a server enforces (see the README's "Limits") ---------------------------------
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="largest JSON request body (413)")
    max_blob_bytes: int = Field(default=64 * 1024**3, ge=1, description="largest single file upload (413)")
    max_files_per_version: int = Field(default=50_000, ge=1, description="most files one version may hold")
    body_timeout: float = Field(default=60.0, gt=0, description="seconds a request body may stall before it is cut")
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request line and headers (431)")
    header_timeout: float = Field(default=30.0, gt=0, description="seconds a request's line and headers may take")
    forwarded_allow_ips: str = Field(
        default="", description="proxies whose X-Forwarded-For names the client, e.g. 10.0.0.5 or *; empty: none"
    )
    max_uploads_per_caller: int = Field(default=16, ge=1, description="concurrent uploads per user (429)")
    anonymous_audit_interval: float = Field(
        default=60.0, ge=0, description="seconds over which refusals without a valid token are counted per source"
    )
    pending_timeout: float = Field(
        default=24 * 3600.0, gt=0, description="PENDING versions older than this many seconds are marked FAILED"
    )
    sweep_interval: float = Field(default=300.0, ge=0, description="how often a server sweeps; 0: never")
    monitor_interval: float = Field(
        default=0.0,
        ge=0,
        description="how often a server checks every active serving deployment, seconds (one replica at a "
        "time); 0: never",
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="webhook targets allowed despite being internal: host:port or CIDR, comma-separated",
    )
    # -- trust (see the README's "Trust") ---------------------------------------------------------
    signing_key_file: str | None = Field(
        default=None, description="PEM file of the registry's Ed25519 private key: promotions are signed with it"
    )
    signing_key_env: str | None = Field(
        default=None, description="name of an environment variable holding that PEM instead of a file"
    )
    scan_interval: float = Field(
        default=1.0, ge=0, description="how often a server scans versions that turned READY, seconds; 0: never"
    )
    # -- the MLflow-compatible API (see the README's "Using Covex from MLflow") ----------------
    mlflow_stages: dict[str, str] = Field(
        default_factory=dict,
        description='MLflow stage -> Covex stage as JSON, e.g. {"Staging": "Dev"}, over mlflow_stage_map\'s defaults',
    )
    mlflow_open_requests: bool = Field(
        default=False, description="a policy-protected MLflow transition opens a Covex request (still refused)"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="the team's MLflow server: model sources Covex does not hold are copied from it"
    )
    mlflow_tracking_token: str | None = Field(default=None, description="bearer token for mlflow_tracking_uri")

    @field_validator("stages", "webhook_allow", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError("at least two stages are needed: an initial one and a target")
        if len({s.lower() for s in value}) != len(value):
            raise ValueError("stage names must be unique (case-insensitive)")
        return value

    @model_validator(mode="after")
    def _check_mlflow_stages(self) -> Settings:
        known = {s.lower() for s in self.stages}
        unknown = [f"{k}={v}" for k, v in self.mlflow_stages.items() if v.lower() not in known]
        if unknown:
            raise ValueError(
                f"mlflow_stages maps to stages that do not exist: {', '.join(unknown)} "
                f"(stages: {', '.join(self.stages)})"
            )
        return self

    @field_validator("webhook_allow")
    @classmethod
    def _check_allowlist(cls, value: list[str]) -> list[str]:
        from covex.domain.netguard import Allowlist

        Allowlist.parse(value)  # a bad entry stops every process at start, workers included
        return value

    @property
    def mlflow_stage_map(self) -> dict[str, str]:
        """MLflow's stages as Covex's: the defaults that exist here (MLflow's None: the first stage), then ours."""
        known = {s.lower(): s for s in self.stages}
        defaults = {k: known[v.lower()] for k, v in DEFAULT_MLFLOW_STAGES.items() if v.lower() in known}
        return {"None": self.stages[0], **defaults, **self.mlflow_stages}

    @property
    def is_remote(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    @property
    def database_url(self) -> str:
        if "://" in self.uri:
            return self.uri
        return f"sqlite:///{Path(self.uri).expanduser().resolve() / 'covex.db'}"

    @property
    def artifacts_url(self) -> str:
        if self.artifacts:
            return self.artifacts
        if "://" in self.uri:
            if self.uri.startswith("sqlite:///"):
                # Two registries must never share blobs: each one's gc would delete what only the other holds.
                # A file named covex.db is the data-folder layout; any other gets a folder named after it.
                db = Path(self.uri.removeprefix("sqlite:///")).expanduser().resolve()
                return str(db.parent / ("artifacts" if db.name == "covex.db" else f"{db.stem}-artifacts"))
            raise ValueError("COVEX_ARTIFACTS must be set when COVEX_URI is a database URL other than SQLite")
        return str(Path(self.uri).expanduser().resolve() / "artifacts")
