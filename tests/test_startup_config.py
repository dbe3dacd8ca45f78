"""Start-up validation, as an operator meets it: every entry point, in a fresh process, reports every configuration
problem at once, as a plain list (no traceback), and exits non-zero before serving anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Each scenario: (settings module, environment, what the output must contain: every problem, by its variable).
SCENARIOS = {
    "two bad values": (
        "config.settings.local",
        {"AGGREGATE_DEADLINE": "abc", "UPSTREAM_FX_TIMEOUT": "-1"},
        ["AGGREGATE_DEADLINE='abc' must be a number", "UPSTREAM_FX_TIMEOUT='-1' must be a number greater than 0"],
    ),
    "production with nothing set": (
        "config.settings.production",
        {},
        [
            "DJANGO_SECRET_KEY must be set",
            "DJANGO_ALLOWED_HOSTS must be set",
            *(f"UPSTREAM_{name}_URL is required" for name in ("SLOW", "CATALOG", "INVENTORY", "REVIEWS", "FX")),
        ],
    ),
    "a deadline that fails every request": (
        "config.settings.local",
        {"AGGREGATE_DEADLINE": "0"},
        ["AGGREGATE_DEADLINE='0' must be a number of at least 0.1"],
    ),
    "a misspelt setting": (
        "config.settings.local",
        {"UPSTREAM_CATALOG_TIMOUT": "1"},
        ["UPSTREAM_CATALOG_TIMOUT", "is not a setting: did you mean UPSTREAM_CATALOG_TIMEOUT?"],
    ),
    "a misspelt upstream": (
        "config.settings.local",
        {"UPSTREAM_CATLOG_URL": "http://127.0.0.1:9"},
        ["UPSTREAM_CATLOG_URL", "did you mean UPSTREAM_CATALOG_URL?"],
    ),
    "a setting for an upstream that does not exist": (
        "config.settings.local",
        {"UPSTREAM_INVENTRY_RETRIES": "1"},
        ["UPSTREAM_INVENTRY_RETRIES", "did you mean UPSTREAM_INVENTORY_RETRIES?"],
    ),
}

ENTRY_POINTS = {
    "manage.py check": lambda port: [sys.executable, "manage.py", "check"],
    "python -m config.serve": lambda port: [sys.executable, "-m", "config.serve", "--port", str(port)],
    "uvicorn": lambda port: [str(BIN / "uvicorn"), "config.asgi:application", "--port", str(port), "--lifespan", "on"],
}


def clean_environment(settings_module: str, **env: str) -> dict[str, str]:
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_", "AGGREGATE_", "FORWARDED_"))
    }
    return {**kept, "DJANGO_SETTINGS_MODULE": settings_module, **env}


def start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an entry point that must refuse to start: if it serves instead, it never exits and this fails."""
    try:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{command} started serving instead of refusing the configuration: {exc.stderr!r}")


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_entry_point_reports_every_problem_at_once_without_a_traceback(entry_point: str, scenario: str) -> None:
    settings_module, env, messages = SCENARIOS[scenario]

    result = start(ENTRY_POINTS[entry_point](free_port()), clean_environment(settings_module, **env))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    missing = [message for message in messages if message not in output]
    assert not missing, output


def test_all_problems_together_are_listed_together() -> None:
    env = {
        "AGGREGATE_DEADLINE": "abc",
        "UPSTREAM_FX_TIMEOUT": "-1",
        "UPSTREAM_CATALOG_TIMOUT": "1",
        "UPSTREAM_CATLOG_URL": "http://127.0.0.1:9",
        "DJANGO_DEBUG": "maybe",
    }
    result = start(ENTRY_POINTS["manage.py check"](0), clean_environment("config.settings.production", **env))

    output = result.stderr
    assert result.returncode != 0
    for variable in ["AGGREGATE_DEADLINE", "UPSTREAM_FX_TIMEOUT", "UPSTREAM_CATALOG_TIMOUT", "UPSTREAM_CATLOG_URL"]:
        assert variable in output
    for variable in ["DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "UPSTREAM_REVIEWS_URL"]:
        assert variable in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "env",
    [
        # A new upstream is added by its URL; only a name one typo away from a used one is refused.
        {"UPSTREAM_WEATHER_URL": "http://127.0.0.1:9", "UPSTREAM_WEATHER_TIMEOUT": "1"},
        # An upstream whose name contains another's, and settings spelled right.
        {"UPSTREAM_FX_RATES_URL": "http://127.0.0.1:9", "UPSTREAM_FX_RATES_RETRIES": "0", "UPSTREAM_FX_RETRIES": "1"},
        {"UPSTREAM_TRANSPORT": "httpx", "UPSTREAM_CATALOG_CONNECT_TIMEOUT": "1", "AGGREGATE_DEADLINE": "0.5"},
    ],
)
def test_legitimate_configuration_passes(env: dict[str, str]) -> None:
    result = start(ENTRY_POINTS["manage.py check"](0), clean_environment("config.settings.local", **env))

    assert result.returncode == 0, result.stderr


OPEN_FILES_PROBE = """
import resource
from config.startup import raise_open_files_limit
print(raise_open_files_limit({needed}), *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


@pytest.mark.parametrize(("hard", "needed", "expected_soft"), [(8192, 2000, 6096), (5000, 2000, 5000)])
def test_the_open_files_limit_is_raised_to_fit_the_upstream_pools_within_the_hard_limit(
    hard: int, needed: int, expected_soft: int
) -> None:
    """A soft limit of 256 (like many systems' 1024, only lower) is raised to the pools' sum plus headroom, capped
    by the hard limit; when the hard limit is too low for that, a warning says which variables to look at."""
    command = (
        f"ulimit -Sn 256 && ulimit -Hn {hard} && exec {sys.executable} -c '{OPEN_FILES_PROBE.format(needed=needed)}'"
    )
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(expected_soft), str(expected_soft), str(hard)]
    assert ("UPSTREAM_<NAME>_MAX_CONNECTIONS" in result.stderr) == (expected_soft < needed + 4096)
