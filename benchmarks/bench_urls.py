"""Benchmark URLconf: every route of `config.urls`, plus the benchmark-only routes of benchmarks/bench_views.py.

The benchmark routes come first: `config.urls` ends with a catch-all that answers 404 problem documents.
"""

from django.urls import path

from config import urls as project_urls

from . import bench_views as views

LIST = {"get": "list"}

urlpatterns = [
    path("bench/ten-calls/", views.TenCallsViewSet.as_view(LIST), name="bench-ten-calls"),
    path("bench/seed/multiple/", views.seed_multiple, name="bench-seed-multiple"),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
