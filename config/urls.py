"""URL configuration: the API under /api/, its schema and docs, liveness, the admin, and a problem-document 404 for
the rest."""

from django.contrib import admin
from django.urls import include, path, re_path

from api import problems, views
from api.urls import health_urlpatterns
from config import metrics

urlpatterns = [
    path("api/", include("api.urls")),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    path("api/docs/", views.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", views.RedocView.as_view(url_name="schema"), name="redoc"),
    *health_urlpatterns,
    # Prometheus, for a scraper with METRICS_TOKEN (config/metrics.py); a plain view: no operation in the schema.
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Anything else is a 404 problem document, also with DEBUG on (Django's debug 404 page is HTML).
    re_path(r"^", problems.not_found_view),
]

handler400 = problems.handler400
handler403 = problems.handler403
handler404 = problems.handler404
handler500 = problems.handler500
