"""URL configuration: the API under /api/, its schema and docs, liveness, the admin, and a problem-document 404 for
the rest.

The schema and docs pages are drf-spectacular's views (api/docs.py), which bring its whole generator: `docs_view()`
imports them at their first request, so a worker that never serves them never loads it (tests/test_startup_imports.py).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.contrib import admin
from django.urls import include, path, re_path

from api import problems
from api.urls import health_urlpatterns
from config import metrics


def docs_view(name: str, **initkwargs: Any) -> Callable[..., Any]:
    """The view function of `api.docs.<name>.as_view(**initkwargs)`, made at its first request.

    A plain function, as the view it stands for (DRF's `as_view()` of a sync view), so Django calls both alike; it
    has no `cls`, so schema generation skips it, as it skips drf-spectacular's views (`exclude=True`) anyway."""
    view: Callable[..., Any] | None = None

    def docs(request: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal view
        if view is None:
            view = getattr(import_module("api.docs"), name).as_view(**initkwargs)
        return view(request, *args, **kwargs)

    docs.__name__ = docs.__qualname__ = name
    docs.csrf_exempt = True  # type: ignore[attr-defined]  # as DRF's as_view() marks every APIView
    return docs


urlpatterns = [
    path("api/", include("api.urls")),
    path("api/schema/", docs_view("SchemaView"), name="schema"),
    path("api/docs/", docs_view("SwaggerView", url_name="schema"), name="swagger-ui"),
    path("api/redoc/", docs_view("RedocView", url_name="schema"), name="redoc"),
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
