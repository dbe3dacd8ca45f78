"""The framework seams we replace, pinned against the libraries' own test suites: Django's `tests/asgi/` and
`tests/handlers/` run against config/handler.py, and adrf's tests (vendored in `adrf/`) against api/onloop.py."""
