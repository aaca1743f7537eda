"""``models:/`` URIs: ``models:/churn/3``, ``models:/churn@champion``,
``models:/churn/Production``, ``models:/churn/latest``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from covex.domain.errors import InvalidInput

SCHEME = "models:/"
# Ids and version numbers are 32-bit integers in the schema (PostgreSQL INTEGER): past that, nothing exists.
MAX_ID = 2**31 - 1
MAX_VERSION = MAX_ID

RefKind = Literal["version", "alias", "stage", "latest"]


@dataclass(frozen=True)
class ModelRef:
    """A reference to one version of a model, not yet resolved."""

    name: str
    kind: RefKind
    value: str = ""

    @property
    def version(self) -> int:
        return int(self.value)

    def __str__(self) -> str:
        if self.kind == "alias":
            return f"{SCHEME}{self.name}@{self.value}"
        if self.kind == "latest":
            return f"{SCHEME}{self.name}/latest"
        return f"{SCHEME}{self.name}/{self.value}"


def is_model_uri(text: str) -> bool:
    return text.startswith(SCHEME)


_LOGGED_MODEL = re.compile(r"models:/m-[0-9a-f]{32}/?")


def is_logged_model_uri(text: str) -> bool:
    """``models:/m-<32 hex digits>``: an MLflow logged model, not a registered model's version."""
    return _LOGGED_MODEL.fullmatch(text) is not None


def parse_model_uri(uri: str, stages: Sequence[str] | None = None) -> ModelRef:
    """Parse a ``models:/`` URI into a ``ModelRef``.

    The model name may hold one ``/`` (a namespace), so the version part is
    whatever follows the last ``/``; an alias follows ``@``. With ``stages``, a
    version part that is no number, stage or ``latest`` is refused here, saying
    what it may be.
    """
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise InvalidInput(f"'uri' {uri!r} must start with {SCHEME!r}")
    rest = uri[len(SCHEME) :].lstrip("/")
    if not rest:
        raise InvalidInput(f"'uri' {uri!r} names no model")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias or "/" in alias:
            raise InvalidInput(f"'uri' {uri!r} must look like models:/<name>@<alias>")
        return ModelRef(name, "alias", alias)
    name, sep, ref = rest.rpartition("/")
    if not sep or not name or not ref:
        raise InvalidInput(
            f"'uri' {uri!r} must name a version: models:/<name>/<version|stage|latest> or models:/<name>@<alias>"
        )
    if ref.isascii() and ref.isdigit():
        return ModelRef(name, "version", str(_number(_digits(ref))))
    if ref.lower() == "latest":
        return ModelRef(name, "latest")
    if stages is not None and ref.lower() not in {s.lower() for s in stages}:
        raise InvalidInput(
            f"'uri' {uri!r}: {ref!r} is not a version: end it with a version number (models:/{name}/3), "
            f"a stage ({', '.join(stages)}), 'latest', or an alias after '@' (models:/{name}@champion)"
        )
    return ModelRef(name, "stage", ref)


def version_ref(name_or_uri: str, version: int | str | None = None, stages: Sequence[str] | None = None) -> ModelRef:
    """Build a ref from either a URI, or a name plus a version number, alias or stage.

    With ``stages`` (the configured ones), a version that is none of these is refused
    with what a version may be, rather than as an unknown stage.
    """
    if is_model_uri(name_or_uri):
        if version is not None:
            raise InvalidInput("give either a models:/ URI or a name and version, not both")
        return parse_model_uri(name_or_uri, stages)
    if version is None:
        if "@" in name_or_uri or "/" in name_or_uri:  # names hold no '@'; a '/' is a namespace or a version
            hint = f"; did you mean models:/{name_or_uri}?"
        else:
            hint = ""
        raise InvalidInput(f"'version' is required with model name {name_or_uri!r}{hint}")
    if isinstance(version, bool):
        raise InvalidInput("'version' must be a number, an alias, a stage or 'latest'")
    if isinstance(version, int):
        return ModelRef(name_or_uri, "version", str(_number(version)))
    text = str(version)
    if text.isascii() and text.isdigit():
        return version_ref(name_or_uri, _digits(text))
    if text.startswith("@"):
        return ModelRef(name_or_uri, "alias", text[1:])
    if text.lower() == "latest":
        return ModelRef(name_or_uri, "latest")
    if stages is not None and text.lower() not in {s.lower() for s in stages}:
        raise InvalidInput(
            f"'version' {text!r} of model {name_or_uri!r} is not a version: give a version number (3), "
            f"an alias (@champion), a stage ({', '.join(stages)}) or 'latest'"
        )
    return ModelRef(name_or_uri, "stage", text)


def _digits(text: str) -> int:
    # Python refuses to convert more than 4,300 digits; anything past 19 is out of range anyway.
    if len(text) > 19:
        raise InvalidInput(f"'version' must be a number from 1 to {MAX_VERSION}, got {text[:40]}...")
    return int(text)


def _number(version: int) -> int:
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"'version' must be a number from 1 to {MAX_VERSION}, got {version}")
    return version
