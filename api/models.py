"""The API app's models, defined in their sub-packages (Django looks for them here)."""

from .clients.models import ApiKey, Client
from .collections.models import Collection, CollectionItem

__all__ = ["ApiKey", "Client", "Collection", "CollectionItem"]
