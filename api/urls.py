"""The API's routes. DRF's router (not adrf's, which renames actions to alist/aretrieve) maps viewset actions."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("external-data", views.ExternalDataViewSet, basename="external-data")
router.register("multiple-external-data", views.MultipleExternalDataViewSet, basename="multiple-external-data")
router.register("products", views.ProductViewSet, basename="product")
router.register("upstreams", views.UpstreamViewSet, basename="upstream")

urlpatterns = router.urls
health_urlpatterns = [
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("readyz", views.ReadinessView.as_view(), name="readyz"),
]
