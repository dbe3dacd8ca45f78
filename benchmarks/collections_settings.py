"""Local settings with the URLconf of `make bench-collections` (benchmarks/collections_urls.py)."""

from config.settings.local import *  # noqa: F403

ROOT_URLCONF = "benchmarks.collections_urls"
