"""Upstream configuration: parsed from environment-style strings, every problem named, and `manage.py check` is the
configuration linter."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from upstreams import ConfigError, declared, parse_upstreams


def test_strings_from_the_environment_are_parsed() -> None:
    configs = parse_upstreams(
        {
            "catalog": {
                "URL": "https://catalog.example/v1/",
                "TIMEOUT": "2.5",
                "CONNECT_TIMEOUT": "0.5",
                "MAX_CONNECTIONS": "20",
                "MAX_BODY_BYTES": "1000",
                "TOKEN": "t",
                "HEADERS": "X-Api-Key: k; Accept-Language: en",
            }
        }
    )

    config = configs["catalog"]
    assert config.base_url == "https://catalog.example/v1"
    assert (config.timeout, config.connect_timeout, config.max_connections, config.max_body_bytes) == (
        2.5,
        0.5,
        20,
        1000,
    )
    assert config.host == "catalog.example"
    assert config.request_headers() == {"X-Api-Key": "k", "Accept-Language": "en", "Authorization": "Bearer t"}


def test_resilience_policies_are_parsed() -> None:
    config = parse_upstreams(
        {
            "fx": {
                "URL": "http://fx",
                "RETRIES": "0",
                "RETRY_BACKOFF": "0.2",
                "RETRY_AFTER_MAX": "3",
                "BREAKER_FAILURES": "3",
                "BREAKER_FAILURE_RATIO": "0.25",
                "BREAKER_COOLDOWN": "7",
                "MAX_CONCURRENCY": "4",
                "QUEUE_TIMEOUT": "0",
                "CACHE_TTL": "60",
                "STALE_IF_ERROR": "300",
            }
        }
    )["fx"]

    assert (config.retry.retries, config.retry.backoff, config.retry.retry_after_max) == (0, 0.2, 3.0)
    assert (config.breaker.failures, config.breaker.failure_ratio, config.breaker.cooldown) == (3, 0.25, 7.0)
    assert (config.bulkhead.max_concurrency, config.bulkhead.queue_timeout) == (4, 0.0)
    assert (config.cache.ttl, config.cache.stale_if_error) == (60.0, 300.0)


def test_defaults_apply_when_only_the_url_is_set() -> None:
    config = parse_upstreams({"fx": {"URL": "http://fx:8080", "TIMEOUT": None, "HEADERS": ""}})["fx"]

    assert (config.timeout, config.connect_timeout, config.max_connections) == (5.0, 2.0, 1000)
    assert config.bulkhead.max_concurrency == config.max_connections
    assert config.host == "fx:8080"
    assert config.request_headers() == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "UPSTREAM_CATALOG_URL is required"),
        ({"URL": "catalog.example"}, "UPSTREAM_CATALOG_URL='catalog.example' must be an absolute http"),
        ({"URL": "ftp://catalog.example"}, "must be an absolute http"),
        ({"URL": "http://catalog.example:99999"}, "invalid port"),
        ({"URL": "http://catalog.example?x=1"}, "must not have a query string"),
        ({"URL": "http://c", "TIMEOUT": "-1"}, "UPSTREAM_CATALOG_TIMEOUT='-1' must be a number greater than 0"),
        ({"URL": "http://c", "TIMEOUT": "soon"}, "UPSTREAM_CATALOG_TIMEOUT='soon'"),
        ({"URL": "http://c", "TIMEOUT": "nan"}, "UPSTREAM_CATALOG_TIMEOUT='nan'"),
        (
            {"URL": "http://c", "MAX_CONNECTIONS": "2.5"},
            "UPSTREAM_CATALOG_MAX_CONNECTIONS='2.5' must be a whole number",
        ),
        ({"URL": "http://c", "TIMEOUT": "1", "CONNECT_TIMEOUT": "3"}, "must not exceed UPSTREAM_CATALOG_TIMEOUT"),
        ({"URL": "http://c", "HEADERS": "no colon here"}, "is not 'Name: value'"),
        ({"URL": "http://c", "RETRIES": "-1"}, "UPSTREAM_CATALOG_RETRIES='-1' must be a whole number 0 or more"),
        ({"URL": "http://c", "BREAKER_FAILURE_RATIO": "1.5"}, "BREAKER_FAILURE_RATIO='1.5' must be a number greater"),
        ({"URL": "http://c", "MAX_CONCURRENCY": "0"}, "UPSTREAM_CATALOG_MAX_CONCURRENCY='0'"),
        ({"URL": "http://c", "COALESCE": "sometimes"}, "UPSTREAM_CATALOG_COALESCE='sometimes' must be true or false"),
        ({"URL": "http://c", "HEADERS": "Bad Name: v"}, "is not a valid header"),
    ],
)
def test_bad_configuration_names_the_variable(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_upstreams({"catalog": values})

    assert any(message in problem for problem in raised.value.problems), raised.value.problems


def test_connect_timeout_follows_a_short_timeout_when_unset() -> None:
    config = parse_upstreams({"fx": {"URL": "http://fx", "TIMEOUT": "0.5"}})["fx"]

    assert config.connect_timeout == 0.5


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_upstreams({"a": {"URL": "nope"}, "b": {"URL": "http://b", "TIMEOUT": "0"}})

    assert len(raised.value.problems) == 2


def test_manage_py_check_passes_with_good_configuration() -> None:
    call_command("check")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"UPSTREAMS": {"catalog": {"URL": "not a url"}}}, "UPSTREAM_CATALOG_URL='not a url'"),
        ({"UPSTREAM_TRANSPORT": "carrier-pigeon"}, "UPSTREAM_TRANSPORT='carrier-pigeon'"),
        ({"AGGREGATE_DEADLINE": -1}, "AGGREGATE_DEADLINE=-1"),
    ],
)
def test_manage_py_check_fails_on_bad_configuration(settings: Any, change: dict[str, Any], message: str) -> None:
    for key, value in change.items():
        setattr(settings, key, value)

    with pytest.raises(SystemCheckError, match=message):
        call_command("check")


def test_manage_py_check_fails_when_an_aggregate_names_an_unconfigured_upstream(settings: Any) -> None:
    settings.UPSTREAMS = {name: cfg for name, cfg in settings.UPSTREAMS.items() if name != "reviews"}

    with pytest.raises(SystemCheckError, match="ProductOverview uses upstream 'reviews'"):
        call_command("check")


# --- The declared upstreams (upstreams/declared.py) -------------------------------------------------------------------


def test_a_declared_upstream_gets_its_default_settings_and_its_demo_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        declared,
        "DECLARED",
        (declared.Upstream("catalog"), declared.Upstream("weather", demo=False, defaults={"CACHE_TTL": "300"})),
    )
    raw: dict[str, dict[str, Any]] = {
        "catalog": {"URL": None},
        "weather": {"URL": "http://weather.test", "CACHE_TTL": None},
    }

    declared.apply_defaults(raw, demo_url="http://demo/{name}")

    assert raw == {
        "catalog": {"URL": "http://demo/catalog"},
        "weather": {"URL": "http://weather.test", "CACHE_TTL": "300"},  # no demo: its URL is its own
    }
    assert parse_upstreams(raw)["weather"].cache.ttl == 300.0


def test_the_test_settings_configure_every_declared_upstream(settings: Any) -> None:
    assert list(settings.UPSTREAMS) == list(declared.names())
