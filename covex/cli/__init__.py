"""The ``covex`` command line."""

from covex.cli.main import app, main

__all__ = ["app", "main"]
