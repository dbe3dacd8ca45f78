"""Production: differs from base only through the environment. Secrets and hosts have no default, and every missing
or bad variable is reported at once at start-up (config/env.py), instead of failing at the first request.

Security (README "Security settings"): the service is meant to run behind a TLS-terminating proxy, and believes the
proxy's `X-Forwarded-Proto` only when the deployment says one is there (`DJANGO_BEHIND_TLS_PROXY=true`). Then plain
http requests are redirected to https (except the health probes), and https responses carry HSTS. Without it, no
request is https as far as Django knows: nothing is redirected, no HSTS is sent, and `check --deploy` says so.
"""

from config.env import env_bool, env_choice, env_int, raise_problems, require, require_list
from config.logging import FORMATS as LOG_FORMATS
from config.logging import logging_settings

from .base import *  # noqa: F403
from .base import LOG_LEVEL, SILENCED_SYSTEM_CHECKS

DEBUG = False
SECRET_KEY = require("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = require_list("DJANGO_ALLOWED_HOSTS")
# One JSON object per log line, for the log pipeline (LOG_FORMAT=readable for a person at a terminal).
LOG_FORMAT = env_choice("LOG_FORMAT", "json", choices=LOG_FORMATS)
LOGGING = logging_settings(LOG_FORMAT, level=LOG_LEVEL)

# Every API call needs a key (README "Clients and keys"); `API_KEYS_REQUIRED=false` opens the API to anonymous calls.
API_KEYS_REQUIRED = env_bool("API_KEYS_REQUIRED", True)

BEHIND_TLS_PROXY = env_bool("DJANGO_BEHIND_TLS_PROXY", False)
# Trusted from any peer: the proxy must set it on every request (overwriting the client's), and be the only way in.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
# Load balancers and orchestrators probe each worker directly over http: a redirect would answer in its place.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)  # one year; sent on https responses only
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# The admin's session and CSRF cookies (the API sets none): https-only wherever https is known to be in use.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", BEHIND_TLS_PROXY)
if not SECURE_HSTS_PRELOAD:
    # Preloading (hstspreload.org) binds the whole registrable domain and takes months to undo: the domain owner's
    # decision, so not a default, and not a warning until someone makes it.
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]

raise_problems(globals())  # last: every problem in the configuration, at once
