"""Configuration from the environment, as an operator meets it: `manage.py check` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import upstream_settings
from upstreams.config import variable_problems

ROOT = Path(__file__).resolve().parents[1]


def manage_check(settings_module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": settings_module, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_local_settings_pass_the_check_out_of_the_box() -> None:
    result = manage_check("config.settings.local")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UPSTREAM_CATALOG_TIMEOUT": "-3"}, "UPSTREAM_CATALOG_TIMEOUT='-3' must be a number greater than 0"),
        ({"UPSTREAM_FX_URL": "fx.internal"}, "UPSTREAM_FX_URL='fx.internal' must be an absolute"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' must be one of"),
        ({"AGGREGATE_DEADLINE": "-1"}, "AGGREGATE_DEADLINE='-1'"),
        ({"DEMO_FAULTS": "reviews=explode"}, "explode"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379' must be a redis://"),
        ({"UPSTREAM_REVIEWS_RETRIES": "many"}, "UPSTREAM_REVIEWS_RETRIES='many' must be a whole number"),
    ],
)
def test_bad_environment_fails_the_check_naming_the_variable(env: dict[str, str], message: str) -> None:
    result = manage_check("config.settings.local", **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_to_start_without_its_secret() -> None:
    result = manage_check("config.settings.production", DJANGO_ALLOWED_HOSTS="api.example")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_has_no_demo_upstreams_so_every_url_must_be_set() -> None:
    result = manage_check("config.settings.production", DJANGO_SECRET_KEY="s", DJANGO_ALLOWED_HOSTS="api.example")

    assert result.returncode != 0
    assert "UPSTREAM_CATALOG_URL is required" in result.stderr


def test_upstreams_beyond_the_builtin_ones_are_found_by_their_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_WEATHER_URL", "http://weather.internal")
    monkeypatch.setenv("UPSTREAM_WEATHER_TOKEN", "t")

    upstreams = upstream_settings(["catalog"], default_url="http://demo/{name}")

    assert list(upstreams) == ["catalog", "weather"]
    assert upstreams["catalog"]["URL"] == "http://demo/catalog"
    assert upstreams["weather"]["URL"] == "http://weather.internal"
    assert upstreams["weather"]["TOKEN"] == "t"


# --- The names of UPSTREAM_* variables (upstreams.config.variable_problems) ----------------------------------------

BUILTIN = ["slow", "catalog", "inventory", "reviews", "fx"]


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("UPSTREAM_CATALOG_TIMOUT", "UPSTREAM_CATALOG_TIMEOUT"),
        ("UPSTREAM_FX_RETRYS", "UPSTREAM_FX_RETRIES"),
        ("UPSTREAM_REVIEWS_STALE_IF_ERRORS", "UPSTREAM_REVIEWS_STALE_IF_ERROR"),
        ("UPSTREAM_INVENTRY_MAX_CONNECTIONS", "UPSTREAM_INVENTORY_MAX_CONNECTIONS"),  # no such upstream
        ("UPSTREAM_TRANSPRT", "UPSTREAM_TRANSPORT"),  # the one global UPSTREAM_ variable
    ],
)
def test_an_unknown_upstream_variable_suggests_the_closest_known_one(variable: str, suggestion: str) -> None:
    problems = variable_problems([variable], builtin=BUILTIN, ignore={"UPSTREAM_TRANSPORT"})

    assert problems == [f"{variable} is not a setting: did you mean {suggestion}?"]


def test_an_unknown_variable_with_nothing_close_lists_the_keys() -> None:
    (problem,) = variable_problems(["UPSTREAM_ZZZ"], builtin=BUILTIN)

    assert problem.startswith("UPSTREAM_ZZZ is not a setting: an upstream takes UPSTREAM_<NAME>_<KEY>, KEY one of URL,")


@pytest.mark.parametrize(
    ("name", "meant"),
    [("catlog", "catalog"), ("reveiws", "reviews"), ("inventroy", "inventory"), ("fz", "fx"), ("catalogue", "catalog")],
)
def test_an_upstream_one_typo_from_a_builtin_one_is_refused(name: str, meant: str) -> None:
    problems = variable_problems([f"UPSTREAM_{name.upper()}_URL"], builtin=BUILTIN)

    assert len(problems) == 1
    assert f"did you mean UPSTREAM_{meant.upper()}_URL?" in problems[0]


@pytest.mark.parametrize("name", ["weather", "fx_rates", "pricing", "slower_data", "cat", "ab"])
def test_any_other_new_upstream_is_legitimate_with_its_settings(name: str) -> None:
    prefix = f"UPSTREAM_{name.upper()}_"
    variables = [prefix + "URL", prefix + "TIMEOUT", prefix + "BREAKER_FAILURE_RATIO", "UPSTREAM_FX_RETRIES"]

    assert variable_problems(variables, builtin=BUILTIN) == []
