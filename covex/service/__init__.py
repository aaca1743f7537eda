"""Use cases: one function per action, one transaction each."""

from covex.service.factory import open_service
from covex.service.registry import RegistryService

__all__ = ["RegistryService", "open_service"]
