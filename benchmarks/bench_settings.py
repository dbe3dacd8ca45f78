"""Production settings with the benchmark URLconf: what `make bench` runs Tributary (and the seed pattern) with."""

from config.settings.production import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
