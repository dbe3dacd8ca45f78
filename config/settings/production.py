"""Production: differs from base only through the environment. Secrets and hosts have no default, so a missing
one stops the process at start-up instead of failing at the first request."""

from config.env import env_bool, env_int, require

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = require("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [host.strip() for host in require("DJANGO_ALLOWED_HOSTS").split(",") if host.strip()]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
