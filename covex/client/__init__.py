"""The SDK: one ``Client`` over two backends (embedded and HTTP)."""

from covex.client.client import Client

__all__ = ["Client"]
