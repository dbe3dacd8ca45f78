"""Settings shared by every environment. Everything that differs between deployments comes from the environment
(config/env.py); local.py, test.py and production.py only choose different defaults.

This module is not a settings module of its own: each of those three ends with `raise_problems(globals())`, which
reports every configuration problem found here and there at once."""

from __future__ import annotations

from pathlib import Path

from config.env import (
    database_settings,
    env,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    upstream_settings,
)
from config.logging import FORMATS as LOG_FORMATS
from config.logging import logging_settings
from config.tracing import EXPORTERS as TRACE_EXPORTERS
from config.tracing import configured as tracing_configured
from upstreams import declared
from upstreams.apps import MIN_AGGREGATE_DEADLINE
from upstreams.registry import TRANSPORTS

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY", "insecure-local-only-key-never-use-in-production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",  # /admin/: clients and their API keys
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "upstreams.apps.UpstreamsConfig",
    "api.apps.ApiConfig",
]

# Only async-native middleware: each sync one would cost a thread hop per request.
MIDDLEWARE = [
    "api.middleware.ObservabilityMiddleware",  # outermost: times every request, reports it to REQUEST_OBSERVERS
    "api.middleware.RequestContextMiddleware",
    "api.middleware.SecurityMiddleware",  # Django's, on the loop: X-Content-Type-Options, HSTS, https redirect...
    "api.middleware.FrameOptionsMiddleware",  # Django's X-Frame-Options, on the loop
    "api.problems.ProblemResponseMiddleware",  # error responses Django or WhiteNoise made: problem documents too
    "api.middleware.StaticFilesMiddleware",
    "api.admin.AdminOnlyMiddleware",  # sessions, auth and messages (sync: thread hops) for /admin/ only
]

# security.W003 (no CsrfViewMiddleware): CSRF abuses a browser's ambient credentials (cookies) on unsafe methods;
# this API has neither: no sessions, no cookies, GET only. Revisit with client authentication if it uses cookies.
SILENCED_SYSTEM_CHECKS = ["security.W003"]
# admin.E408-E410 look for Django's session, authentication and message middleware in MIDDLEWARE: they run for the
# admin's pages only, inside api.admin.AdminOnlyMiddleware, so the API's requests pay no thread hop for them.
SILENCED_SYSTEM_CHECKS += ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

# A larger request body is refused with a 413 problem before it is read (config/handler.py). Only the collections'
# writes take one: the largest valid collection (50 items, 500-character notes, JSON-escaped) is about 150 KB.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 256 * 1024)
# What else a client may send (config/http.py): the request line and headers (431 beyond), and the time it may take
# to send a whole request, head and body (408 after).
MAX_REQUEST_HEAD_BYTES = env_int("MAX_REQUEST_HEAD_BYTES", 16 * 1024, minimum=1024)
REQUEST_READ_TIMEOUT = env_float("REQUEST_READ_TIMEOUT", 10.0, minimum=0.1)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,  # drf-spectacular's Swagger UI / ReDoc pages
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",  # the admin's pages
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# DATABASE_URL: postgres://... (psycopg 3, pooled per worker) or sqlite:///path; unset, SQLite (SQLITE_PATH).
DATABASES = {"default": database_settings(sqlite_default=str(BASE_DIR / "db.sqlite3"))}
# With REDIS_URL, the response cache and the circuit breakers are shared by every worker and host.
REDIS_URL = env("REDIS_URL") or None
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Only for `collectstatic` deployments; WhiteNoise serves from the apps' folders either way.
STATIC_ROOT = env("STATIC_ROOT") or None
# Serve straight from the apps' static folders (the sidecar's Swagger UI and ReDoc): no collectstatic step needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

# --- The API -----------------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["api.renderers.ORJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],  # DRF's, with too-deep nesting a 400 (not a 500)
    # API keys (api/clients/): no sessions, no users; a cached key needs no database query (README "Clients and keys").
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.clients.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.clients.authentication.CallerAllowed"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    # drf-spectacular's AutoSchema, loaded when a schema is generated, not by every worker (api/schema.py).
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    # Per-client rate limits (RATE_LIMIT*, below); the health probes and the docs pages opt out.
    "DEFAULT_THROTTLE_CLASSES": ["api.clients.ratelimit.ClientRateThrottle"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tributary",
    "DESCRIPTION": (
        "One fast, typed endpoint over several slow HTTP JSON APIs. Upstream calls run concurrently; "
        "failures are reported as RFC 9457 problem documents (`application/problem+json`) with a machine-readable "
        "`code` (the `ProblemCode` enum), and optional parts that fail are listed in the response's `missing` array. "
        "Every path takes GET and HEAD (the collections also POST, PUT, PATCH and DELETE), answers OPTIONS with 204 "
        "and `Allow`, and any other method with 405 "
        "(`method_not_allowed`, with `Allow`); every operation answers 406 (`not_acceptable`) to an `Accept` header "
        "that admits neither `application/json` nor `application/problem+json`."
    ),
    "VERSION": "0.1.0",
    # 3.1: nullable nested objects are `oneOf: [$ref, {type: null}]`, which validators and generators agree on
    # (3.0's `nullable` beside `allOf` is read differently by different tools).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs pages are public, also where keys are required: a key is entered in Swagger UI.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ProblemCode": "api.problems.PROBLEM_CODE_CHOICES"},  # what generated clients switch on
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.drop_anonymous_security",
        "api.clients.ratelimit.document_rate_limits",  # 429 and the RateLimit fields on every limited operation
        "api.clients.schema.document_key_errors",
    ],
}

# --- Clients and keys (api/clients/) -----------------------------------------------------------------------------

# Anonymous calls: allowed here and in local settings unless true; production.py requires keys unless false.
API_KEYS_REQUIRED = env_bool("API_KEYS_REQUIRED", False)
# Per worker: how long a key's verdict (valid, unknown, revoked...) is reused, and how many are kept. A key revoked
# elsewhere stops working here within the TTL.
API_KEY_CACHE_TTL = env_float("API_KEY_CACHE_TTL", 30.0, minimum=0.0)
API_KEY_CACHE_SIZE = env_int("API_KEY_CACHE_SIZE", 10_000, minimum=1)
# Seconds between the batched writes of keys' last-used times (one query per interval per worker).
API_KEY_LAST_USED_INTERVAL = env_float("API_KEY_LAST_USED_INTERVAL", 60.0, minimum=0.01)

# --- Upstreams ---------------------------------------------------------------------------------------------------

PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
DEMO_UPSTREAMS = env_bool("DEMO_UPSTREAMS", False)
DEMO_LATENCY_MS = env_float("DEMO_LATENCY_MS", 100.0)
DEMO_FAULTS = env("DEMO_FAULTS", "") or ""

# The upstreams the built-in aggregates use (upstreams/declared.py); more can be added with UPSTREAM_<NAME>_URL.
BUILTIN_UPSTREAMS = list(declared.required_names())
DEMO_URL = f"http://127.0.0.1:{PORT}/demo/{{name}}"
UPSTREAMS = upstream_settings(BUILTIN_UPSTREAMS, default_url=None)
declared.apply_defaults(UPSTREAMS, demo_url=DEMO_URL if DEMO_UPSTREAMS else None)
UPSTREAM_TRANSPORT = env_choice("UPSTREAM_TRANSPORT", "aiohttp", choices=tuple(TRANSPORTS))
# The whole request's budget for its upstream calls, in seconds.
AGGREGATE_DEADLINE = env_float("AGGREGATE_DEADLINE", 10.0, minimum=MIN_AGGREGATE_DEADLINE)

# --- Rate limits (api/clients/ratelimit.py) -------------------------------------------------------------------------

# Requests per RATE_LIMIT_PERIOD seconds: for each client (unless its own `rate_limit` says otherwise), and for each
# client IP of anonymous callers. 0: no limit. Shared by every worker and host with REDIS_URL, else per worker.
RATE_LIMIT = env_int("RATE_LIMIT", 600, maximum=1_000_000)
RATE_LIMIT_PERIOD = env_int("RATE_LIMIT_PERIOD", 60, minimum=1, maximum=86_400)
RATE_LIMIT_ANONYMOUS = env_int("RATE_LIMIT_ANONYMOUS", 60, maximum=1_000_000)
# Per worker, without Redis (or while it is unreachable): callers tracked at most (idle ones are dropped first).
RATE_LIMIT_MAX_KEYS = env_int("RATE_LIMIT_MAX_KEYS", 50_000, minimum=100)

# --- Operating: logs, metrics, traces (README "Operating Tributary") ---------------------------------------------

# One line per record; "json" in production (production.py), "readable" here. Every request writes an access line.
LOG_FORMAT = env_choice("LOG_FORMAT", "readable", choices=LOG_FORMATS)
LOG_LEVEL = (env("LOG_LEVEL") or "INFO").upper()
LOGGING = logging_settings(LOG_FORMAT, level=LOG_LEVEL)
# Prometheus metrics (config/metrics.py), recorded unless false; GET /metrics answers only with this bearer token
# (404 while it is unset). Several workers: python -m config.serve sets PROMETHEUS_MULTIPROC_DIR itself.
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
METRICS_TOKEN = env("METRICS_TOKEN") or None
# OpenTelemetry traces (config/tracing.py): on when the standard OTEL_* variables configure an exporter.
TRACING_ENABLED = tracing_configured()
env_choice("OTEL_TRACES_EXPORTER", "otlp", choices=TRACE_EXPORTERS)
env_choice("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", choices=("http/protobuf",))
env_choice("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", choices=("http/protobuf",))
# What sees each finished request (api/observe.py): the access line, then metrics and the server span's name.
REQUEST_OBSERVERS = [
    "api.logging.AccessLog",
    *(["config.metrics.RequestMetrics"] if METRICS_ENABLED else []),
    *(["config.tracing.ServerSpanNames"] if TRACING_ENABLED else []),
]
