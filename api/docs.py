"""The schema and its documentation pages (the OpenAPI schema, Swagger UI, ReDoc): drf-spectacular's views, which a
worker loads at the first request for one of them only.

Their module brings drf-spectacular's views, generator, renderers and PyYAML that serving the API never needs, so
nothing on the request path imports this one: the URLconf routes the three pages through `config/urls.py`'s
`docs_view()`, which imports it at the page's first request. The schema's generation itself is loaded by the first
generation (api/schema.py `AutoSchema`). tests/test_startup_imports.py pins both.
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
