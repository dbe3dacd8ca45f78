"""The API app's models, defined in their sub-packages (Django looks for them here)."""

from .clients.models import ApiKey, Client

__all__ = ["ApiKey", "Client"]
