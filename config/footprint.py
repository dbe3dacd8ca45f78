"""A worker's idle memory: optional packages that libraries import at their own import time only because they are
installed, for features this service does not use, are kept out of the workers.

    uvicorn                  watchfiles, the file watcher of `--reload` (`python -m config.serve` only: the
                             `uvicorn` command has imported uvicorn before any of our code runs)
    httpx                    httpx._main, its command-line client: click, rich, pygments
    rest_framework.compat    django.contrib.postgres (and psycopg): DRF's serializer fields for PostgreSQL's own
                             model fields; hidden unless a database is PostgreSQL
                             requests: DRF's RequestsClient, a test client
                             yaml, uritemplate: DRF's own schema generator and renderers (drf-spectacular, which
                             makes ours, imports both itself when it generates and renders the schema)
                             pygments: the browsable API's syntax highlighting (the API renders JSON only)

Together about 18 MB and 310 modules per worker (README "Memory"). Each library is imported once, at start-up,
with those modules hidden (`sys.modules[name] = None`, so `import name` raises ImportError: the library takes its
own "not installed" branch, as in a deployment without the package), and they are visible again at once: anything
that imports them later (drf-spectacular, the PostgreSQL backend, a test) gets the real package. A library already
imported (by a test, by a command) is left as it is.

tests/test_startup_imports.py pins it: a production worker holds none of them, and each is there when the feature
that needs it is configured or used (PostgreSQL, the schema).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["hidden", "import_frameworks", "import_httpx", "import_uvicorn", "postgresql_configured"]

UVICORN_HIDDEN = ("watchfiles",)
HTTPX_HIDDEN = ("httpx._main",)
REST_FRAMEWORK_HIDDEN = ("requests", "yaml", "uritemplate", "pygments")
POSTGRESQL_HIDDEN = ("django.contrib.postgres",)


@contextlib.contextmanager
def hidden(names: Iterable[str]) -> Iterator[None]:
    """Inside the block, importing any of `names` (not imported yet) raises ImportError; after it, it works again."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's own "not importable" marker
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def import_uvicorn() -> None:
    """Import uvicorn without watchfiles (its reloader falls back to polling, `StatReload`, if ever asked for)."""
    if "uvicorn" not in sys.modules:
        with hidden(UVICORN_HIDDEN):
            importlib.import_module("uvicorn")


def import_httpx() -> None:
    """Import httpx without its command-line client (before anything else imports httpx)."""
    if "httpx" not in sys.modules:
        with hidden(HTTPX_HIDDEN):
            importlib.import_module("httpx")


def postgresql_configured(databases: Mapping[str, Mapping[str, Any]]) -> bool:
    return any("postgresql" in str(database.get("ENGINE", "")) for database in databases.values())


def import_frameworks(databases: Mapping[str, Mapping[str, Any]]) -> None:
    """Import DRF's compat module without the optional packages it probes for that this service does not use; with
    the settings loaded (whether a database is PostgreSQL decides about `django.contrib.postgres`), before Django's
    apps import DRF."""
    if "rest_framework.compat" not in sys.modules:
        postgresql = postgresql_configured(databases)
        with hidden(REST_FRAMEWORK_HIDDEN if postgresql else REST_FRAMEWORK_HIDDEN + POSTGRESQL_HIDDEN):
            importlib.import_module("rest_framework.compat")
