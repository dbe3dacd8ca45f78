"""Start-up validation, shared by every entry point: `manage.py`, `python -m config.serve` and `config/asgi.py` (so
`uvicorn config.asgi:application` too). Load the settings (each settings module raises every problem reading the
environment found, at once: config/env.py), run Django's system checks, and if anything is wrong print every problem
as a plain list and exit non-zero, before serving anything. An operator needs the variables to fix, not a traceback.
"""

from __future__ import annotations

import logging
import os
import resource
import sys

import django
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from config import footprint

footprint.import_httpx()  # before config.env, which imports upstreams and so httpx: without httpx's CLI

from config.env import ConfigurationProblems  # noqa: E402 - after httpx is imported

__all__ = [
    "EXIT_CODE",
    "configuration_problems",
    "exit_if_misconfigured",
    "raise_open_files_limit",
    "settings_problems",
]

logger = logging.getLogger("tributary.startup")
# Sockets and files besides the upstream pools: clients' connections, Redis, the database, logs.
OPEN_FILES_HEADROOM = 4096

EXIT_CODE = 1

_validated = False  # once per process: `python -m config.serve` validates, then imports config/asgi.py


def settings_problems() -> list[str]:
    """Import the settings module; every problem it raised, one message each (nothing: the settings are good)."""
    try:
        settings.INSTALLED_APPS  # noqa: B018 - the first access imports the settings module
    except ConfigurationProblems as exc:
        return exc.problems
    except ImproperlyConfigured as exc:
        return [str(exc)]
    return []


def configuration_problems() -> list[str]:
    """The settings' problems; if there are none, Django set up and the errors of its system checks."""
    problems = settings_problems()
    if problems:
        return problems
    footprint.import_frameworks(settings.DATABASES)  # before Django's apps import DRF (config/footprint.py)
    django.setup(set_prefix=False)
    return [str(message) for message in checks.run_checks() if message.is_serious() and not message.is_silenced()]


def exit_if_misconfigured(*, system_checks: bool = True) -> None:
    """Print every problem and exit with EXIT_CODE, or return with Django set up (settings only: loaded)."""
    global _validated
    if _validated:
        return
    problems = configuration_problems() if system_checks else settings_problems()
    if not problems:
        _validated = system_checks
        return
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    lines = [f"Tributary cannot start: {len(problems)} configuration problem(s) ({module}):"]
    lines += ["  - " + problem.replace("\n", "\n    ") for problem in problems]
    print("\n".join(lines), file=sys.stderr)  # noqa: T201 - before logging is configured: the operator's terminal
    sys.stdout.flush()
    raise SystemExit(EXIT_CODE)


def raise_open_files_limit(upstream_connections: int) -> int:
    """Raise this process's soft limit on open files towards what the upstream pools can open (their sizes summed)
    plus headroom, never above the hard limit; returns the soft limit now in force.

    Many systems start processes with a soft limit of 1024, below what a busy worker's pools reach: the connection
    that would cross it fails (an `upstream_unreachable` 503, never a 500), so a too-low hard limit is logged once.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = upstream_connections + OPEN_FILES_HEADROOM
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        logger.warning(
            "Open files: the limit is %d, below the %d the upstream pools (UPSTREAM_<NAME>_MAX_CONNECTIONS, %d in "
            "all) and other connections may need; raise the hard limit (ulimit -Hn) or the pools' sizes may fail",
            soft,
            wanted,
            upstream_connections,
        )
    return soft
