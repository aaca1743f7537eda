"""The ``covex`` command line (entry point: ``covex.cli.main:main``)."""

from covex.cli.main import app

__all__ = ["app"]
