"""Security headers and the https redirect: Django's SecurityMiddleware and XFrameOptionsMiddleware, run on the loop
(api/middleware.py), pinned against Django's own classes; production settings pass `check --deploy`; and
X-Forwarded-Proto is believed only when the deployment says a TLS proxy is there."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import time
import unittest
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import django.middleware.security
import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.core import checks
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware
from django.test import AsyncClient, RequestFactory, override_settings

from api.middleware import FrameOptionsMiddleware, SecurityMiddleware
from tests.framework.upstream_sources import django_tests_dir
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

# --- Equivalence with Django's classes ----------------------------------------------------------------------------

SETTINGS: list[dict[str, Any]] = [
    {},  # Django's defaults: nosniff, Referrer-Policy same-origin, COOP same-origin, no HSTS, no redirect
    {"SECURE_HSTS_SECONDS": 3600},
    {"SECURE_HSTS_SECONDS": 600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": True},
    {"SECURE_SSL_REDIRECT": True},
    {"SECURE_SSL_REDIRECT": True, "SECURE_SSL_HOST": "secure.example", "SECURE_REDIRECT_EXEMPT": [r"^healthz$"]},
    {"SECURE_SSL_REDIRECT": True, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
    {
        "SECURE_CONTENT_TYPE_NOSNIFF": False,
        "SECURE_REFERRER_POLICY": None,
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
        "X_FRAME_OPTIONS": "SAMEORIGIN",
    },
    {"SECURE_REFERRER_POLICY": "no-referrer, strict-origin", "SECURE_CROSS_ORIGIN_OPENER_POLICY": "unsafe-none"},
    {"SECURE_REFERRER_POLICY": ["origin", "no-referrer"], "SECURE_HSTS_SECONDS": 1},
]

REQUESTS: list[dict[str, Any]] = [
    {"path": "/api/products/7/"},
    {"path": "/api/products/?page=2&page_size=5"},
    {"path": "/healthz"},
    {"path": "/api/products/7/", "secure": True},
    {"path": "/api/products/7/", "headers": {"x-forwarded-proto": "https"}},
    {"path": "/api/products/7/", "headers": {"x-forwarded-proto": "http"}, "secure": True},
    {"path": "/api/upstreams/", "response_headers": {"Strict-Transport-Security": "max-age=1"}, "secure": True},
    {
        "path": "/api/upstreams/",
        "response_headers": {"X-Content-Type-Options": "x", "Referrer-Policy": "origin", "X-Frame-Options": "DENY"},
    },
    {"path": "/api/docs/", "exempt_from_framing": True},
    {"path": "/api/", "method": "HEAD"},
]


def make_request(case: dict[str, Any]) -> HttpRequest:
    factory = RequestFactory()
    method = getattr(factory, case.get("method", "GET").lower())
    request: HttpRequest = method(case["path"], secure=case.get("secure", False), headers=case.get("headers", {}))
    return request


def make_view(case: dict[str, Any]) -> Any:
    async def view(request: HttpRequest) -> HttpResponseBase:
        response = HttpResponse(b"{}", content_type="application/json", headers=case.get("response_headers"))
        if case.get("exempt_from_framing"):
            response.xframe_options_exempt = True  # type: ignore[attr-defined]
        return response

    return view


def outcome(response: HttpResponseBase) -> tuple[int, list[tuple[str, str]]]:
    return response.status_code, sorted(response.items())


@pytest.mark.parametrize(
    ("settings_index", "request_index"), list(itertools.product(range(len(SETTINGS)), range(len(REQUESTS))))
)
async def test_same_headers_and_redirects_as_djangos_middleware(settings_index: int, request_index: int) -> None:
    case = REQUESTS[request_index]
    with override_settings(ALLOWED_HOSTS=["testserver"], **SETTINGS[settings_index]):
        ours = SecurityMiddleware(FrameOptionsMiddleware(make_view(case)))
        djangos = DjangoSecurityMiddleware(XFrameOptionsMiddleware(make_view(case)))

        expected = outcome(await djangos(make_request(case)))
        actual = outcome(await ours(make_request(case)))

    assert actual == expected


# --- Django's own tests of the two middlewares, run against ours ---------------------------------------------------


def driven(middleware: type) -> type:
    """`middleware` (async only) the way Django's tests call one: built on a sync `get_response` and called
    synchronously. The call runs our async `__call__` to completion on a fresh loop."""

    class Driven(middleware):  # type: ignore[valid-type, misc]
        def __init__(self, get_response: Any) -> None:
            async def async_get_response(request: HttpRequest) -> HttpResponseBase:
                return get_response(request)  # type: ignore[no-any-return]

            super().__init__(async_get_response)

        def __call__(self, request: HttpRequest) -> HttpResponseBase:  # type: ignore[override]
            return asyncio.run(middleware.__call__(self, request))

    return Driven


def load_djangos_tests(relative: str) -> ModuleType:
    path = django_tests_dir() / relative
    spec = importlib.util.spec_from_file_location(f"djangos_{path.parent.name}_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_test_case(case: type[unittest.TestCase]) -> unittest.TestResult:
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    return result


def test_djangos_security_middleware_tests_pass_against_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's tests/middleware/test_security.py (the installed version's sdist): its helper imports the class from
    django.middleware.security at each call, so that name is pointed at ours for the run. (The helper calls
    `process_request` itself before calling the middleware, so the redirect through our `__call__` is pinned by the
    equivalence test above, not here.)"""
    module = load_djangos_tests("middleware/test_security.py")
    monkeypatch.setattr(django.middleware.security, "SecurityMiddleware", driven(SecurityMiddleware))

    result = run_test_case(module.SecurityMiddlewareTest)

    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun >= 20  # Django 5.2 has 24: the suite really ran


def test_djangos_clickjacking_middleware_tests_pass_against_ours() -> None:
    """Django's XFrameOptionsMiddlewareTest (tests/middleware/tests.py) calls the class by its module-level name."""
    module = load_djangos_tests("middleware/tests.py")
    module.XFrameOptionsMiddleware = driven(FrameOptionsMiddleware)

    result = run_test_case(module.XFrameOptionsMiddlewareTest)

    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun >= 6  # Django 5.2 has 8


# --- On every response, with no thread hop ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "opener_policy"),
    [
        ("/healthz", "same-origin"),
        ("/api/upstreams/", "same-origin"),
        ("/api/no-such-thing/", "same-origin"),
        # drf-spectacular's Swagger UI view sets its own (for OAuth2 pop-ups); like Django's, ours keeps a view's.
        ("/api/docs/", "unsafe-none"),
    ],
)
async def test_every_response_carries_the_security_headers(path: str, opener_policy: str) -> None:
    response = await AsyncClient().get(path)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == opener_policy
    assert response["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response  # test settings: no HSTS, and the request is http anyway


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        seen.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return seen


@pytest.mark.parametrize(
    ("chain", "expected_hops"),
    [
        (lambda view: SecurityMiddleware(FrameOptionsMiddleware(view)), 0),
        # Control: the same chain of Django's own classes hops to a thread three times per request.
        (lambda view: DjangoSecurityMiddleware(XFrameOptionsMiddleware(view)), 3),
    ],
    ids=["ours", "djangos"],
)
async def test_no_thread_hop_per_request(hops: list[str], chain: Any, expected_hops: int) -> None:
    with override_settings(ALLOWED_HOSTS=["testserver"], SECURE_HSTS_SECONDS=60):
        middleware = chain(make_view({}))
        response = await middleware(make_request({"path": "/healthz", "secure": True}))

    assert response["Strict-Transport-Security"] == "max-age=60"
    assert len(hops) == expected_hops, hops


# --- Django's deploy checks see our classes -----------------------------------------------------------------------


def deploy_warnings() -> set[str]:
    return {message.id for message in checks.run_checks(include_deployment_checks=True) if message.id}


def test_deploy_checks_count_our_middleware_as_djangos(settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 0

    found = deploy_warnings()

    assert "security.W001" not in found  # installed: ours is Django's SecurityMiddleware
    assert "security.W002" not in found
    assert "security.W004" in found  # and the checks it gates still run: HSTS is off here


def test_deploy_checks_still_see_the_middleware_missing(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Security" not in m and "FrameOptions" not in m]

    found = deploy_warnings()

    assert {"security.W001", "security.W002"} <= found


# --- Production settings, in their own process --------------------------------------------------------------------

SECRET = "a-production-secret-long-and-varied-enough-for-the-deploy-check-0123456789"


def production_environment(**env: str) -> dict[str, str]:
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_", "AGGREGATE_", "FORWARDED_"))
    }
    upstreams = {f"UPSTREAM_{name}_URL": "http://127.0.0.1:9" for name in ("SLOW", "CATALOG", "INVENTORY", "REVIEWS")}
    return {
        **kept,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "api.example",
        "UPSTREAM_FX_URL": "http://127.0.0.1:9",
        **upstreams,
        **env,
    }


def deploy_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_settings_pass_check_deploy_behind_a_tls_proxy() -> None:
    result = deploy_check(DJANGO_BEHIND_TLS_PROXY="true")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_says_so_when_no_tls_proxy_is_declared() -> None:
    result = deploy_check()

    assert result.returncode != 0
    assert "security.W008" in result.stderr  # no https redirect: nothing tells Django a request was https
    assert "security.W001" not in result.stderr


@pytest.fixture
def serve_production() -> Iterator[Any]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "config.serve", "--port", str(port), "--log-level", "warning", *args],
            cwd=ROOT,
            # These tests are about https, not keys: anonymous calls allowed (production requires keys by default).
            env=production_environment(**{"API_KEYS_REQUIRED": "false", **env}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):  # polled until it answers, or the process died (a bounded wait, not a timing assertion)
            assert process.poll() is None, "the server exited"
            try:
                httpx.get(f"{url}/healthz", headers={"Host": "api.example"}, timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return url
        pytest.fail("the server never answered")

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(url + path, headers={"Host": "api.example", **headers}, timeout=10)


@pytest.mark.e2e
def test_behind_a_declared_tls_proxy_http_is_redirected_and_https_gets_hsts(serve_production: Any) -> None:
    url = serve_production(DJANGO_BEHIND_TLS_PROXY="true")

    plain = get(url, "/api/upstreams/", **{"X-Forwarded-Proto": "http"})
    secure = get(url, "/api/upstreams/", **{"X-Forwarded-Proto": "https"})
    probe = get(url, "/healthz")

    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://api.example/api/upstreams/"
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert secure.headers["X-Content-Type-Options"] == "nosniff"
    assert secure.headers["Referrer-Policy"] == "same-origin"
    assert secure.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert probe.status_code == 200  # health probes reach the worker over plain http: never redirected
    assert "Strict-Transport-Security" not in probe.headers


@pytest.mark.e2e
def test_without_a_declared_proxy_x_forwarded_proto_is_not_believed(serve_production: Any) -> None:
    """Not by Django (no SECURE_PROXY_SSL_HEADER), and not by uvicorn: `python -m config.serve` no longer trusts
    X-Forwarded-* from 127.0.0.1 unless --forwarded-allow-ips / FORWARDED_ALLOW_IPS names it."""
    url = serve_production()

    response = get(url, "/api/upstreams/", **{"X-Forwarded-Proto": "https"})

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # the request was http: no HSTS


@pytest.mark.e2e
def test_a_proxy_named_to_uvicorn_is_believed(serve_production: Any) -> None:
    url = serve_production("--forwarded-allow-ips", "127.0.0.1")

    response = get(url, "/api/upstreams/", **{"X-Forwarded-Proto": "https"})

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
