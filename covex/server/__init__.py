"""The HTTP adapter: REST API v1 over the service layer."""

from covex.server.app import create_app

__all__ = ["create_app"]
