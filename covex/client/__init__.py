"""The SDK: one ``Client`` over two backends (embedded and HTTP), and the interfaces of its governance areas."""

from covex.client.client import Client
from covex.client.governance import Access, Approvals, Audit, Monitoring, Webhooks

__all__ = ["Access", "Approvals", "Audit", "Client", "Monitoring", "Webhooks"]
