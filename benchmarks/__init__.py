"""Benchmarks: `make bench` (run.py: Tributary against reference implementations) and `make bench-transports`."""
