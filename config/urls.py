"""URL configuration: the API under /api/, its schema and docs, liveness, and a problem-document 404 for the rest."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from api import problems
from api.urls import health_urlpatterns

urlpatterns = [
    path("api/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    *health_urlpatterns,
    # Anything else is a 404 problem document, also with DEBUG on (Django's debug 404 page is HTML).
    re_path(r"^", problems.not_found_view),
]

handler400 = problems.handler400
handler403 = problems.handler403
handler404 = problems.handler404
handler500 = problems.handler500
