"""The schema and its documentation pages (the OpenAPI schema, Swagger UI, ReDoc): drf-spectacular's views, which a
worker loads at the first request for one of them only.

Their module brings drf-spectacular's generator, its renderers and PyYAML (about 60 modules, 1-2 MB per worker) that
serving the API never needs, so nothing on the request path imports this one: the URLconf routes the three pages
through `config/urls.py`'s `docs_view()`, which imports it at the page's first request. The schema's own parts
(`AutoSchema`, the API keys' security schemes of api/clients/schema.py) stay registered at start-up, as before: the
views' `extend_schema` declarations build on them when they are imported. tests/test_startup_imports.py pins it.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .views import AnswersOptions

__all__ = ["RedocView", "SchemaView", "SwaggerView"]


class SchemaView(AnswersOptions, SpectacularAPIView):
    """The OpenAPI schema (`?format=json` for JSON)."""

    throttle_classes = ()  # the schema and docs pages are not rate limited


class SwaggerView(AnswersOptions, SpectacularSwaggerView):
    """Swagger UI, from the sidecar's local assets."""

    throttle_classes = ()


class RedocView(AnswersOptions, SpectacularRedocView):
    """ReDoc, from the sidecar's local assets and with nothing fetched from elsewhere.

    drf-spectacular's template links Google Fonts, and ReDoc's bundle shows a logo from its CDN: ours links no
    fonts (ReDoc falls back to the system's) and keeps that logo from being requested (api/templates/api/redoc.html).
    """

    template_name = "api/redoc.html"
    throttle_classes = ()
