"""The create-version route hands its body to the service as a ``NewVersion``, field for field."""

from __future__ import annotations

from dataclasses import fields

from covex.domain.entities import NewVersion
from covex.server.schemas import CreateVersion


def test_the_request_body_has_exactly_the_fields_of_a_new_version() -> None:
    assert [f.name for f in fields(NewVersion)] == list(CreateVersion.model_fields)
