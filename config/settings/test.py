"""Test settings: upstreams point at a closed placeholder; each test points them where it needs (respx or a
real loopback server), through the fixtures in tests/conftest.py."""

from config.env import raise_problems
from upstreams import declared

from .base import *  # noqa: F403

SECRET_KEY = "test-only"  # noqa: S105 - not a secret: tests only
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
DEMO_UPSTREAMS = False
DEMO_LATENCY_MS = 0.0
UPSTREAMS = {
    name: {"URL": f"http://{name}.upstream.test", "TIMEOUT": "2", "CONNECT_TIMEOUT": "1"} for name in declared.names()
}
AGGREGATE_DEADLINE = 5.0
RATE_LIMIT = RATE_LIMIT_ANONYMOUS = 0  # no limit: the tests of rate limits set their own
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

raise_problems(globals())  # last: every problem in the configuration, at once
