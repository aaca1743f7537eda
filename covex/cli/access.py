"""The ``covex`` commands for access."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
