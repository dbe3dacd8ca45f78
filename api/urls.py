"""The API's routes. DRF's router (not adrf's, which renames actions to alist/aretrieve) maps viewset actions: one
viewset per route prefix of the published aggregates (api/aggregates.py), then the hand-written ones."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from . import aggregates, views
from .collections.views import CollectionViewSet

assert aggregates  # imported for its declarations: each published aggregate registers itself


def api_urlpatterns() -> list[URLPattern | URLResolver]:
    """The routes of every aggregate published so far, and of the hand-written viewsets."""
    router = SimpleRouter()
    for prefix, viewset in views.aggregate_viewsets():
        router.register(prefix, viewset, basename=prefix)
    router.register("upstreams", views.UpstreamViewSet, basename="upstream")
    router.register("collections", CollectionViewSet, basename="collection")
    return router.urls


urlpatterns = api_urlpatterns()
health_urlpatterns = [
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("readyz", views.ReadinessView.as_view(), name="readyz"),
]
