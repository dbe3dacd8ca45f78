"""Laptop defaults: the demo upstreams are on, so `make run` aggregates real HTTP calls with no network."""

from config.env import env_bool, env_int, raise_problems, upstream_settings
from upstreams import declared

from .base import *  # noqa: F403
from .base import BUILTIN_UPSTREAMS, DEMO_URL

DEMO_UPSTREAMS = env_bool("DEMO_UPSTREAMS", True)
UPSTREAMS = upstream_settings(BUILTIN_UPSTREAMS, default_url=None)
declared.apply_defaults(UPSTREAMS, demo_url=DEMO_URL if DEMO_UPSTREAMS else None)
# Anonymous calls are not limited on a laptop (keyed clients still are: RATE_LIMIT).
RATE_LIMIT_ANONYMOUS = env_int("RATE_LIMIT_ANONYMOUS", 0, maximum=1_000_000)

raise_problems(globals())  # last: every problem in the configuration, at once
