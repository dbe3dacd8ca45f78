"""parse_retry_after: delta-seconds and HTTP-dates (RFC 9110 10.2.3) as seconds from a fixed `now`; unusable -> None."""

from __future__ import annotations

import calendar
from email.utils import formatdate

import pytest

from upstreams.client import parse_retry_after

# Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date) minus one minute.
NOW = calendar.timegm((1994, 11, 6, 8, 48, 37))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(" 5 ", 5.0, id="surrounding-whitespace"),
        pytest.param("007", 7.0, id="leading-zeros"),
    ],
)
def test_delta_seconds_parsed_as_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_future_http_date_gives_seconds_until_it() -> None:
    assert parse_retry_after(formatdate(NOW + 90, usegmt=True), now=NOW) == pytest.approx(90.0)


def test_past_http_date_gives_zero() -> None:
    assert parse_retry_after(formatdate(NOW - 3600, usegmt=True), now=NOW) == 0.0


def test_http_date_with_numeric_utc_offset_is_converted() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 09:49:37 +0100", now=NOW) == pytest.approx(60.0)


def test_obsolete_rfc850_http_date_is_accepted() -> None:
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=NOW) == pytest.approx(60.0)


def test_obsolete_asctime_http_date_is_accepted() -> None:
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", now=NOW) == pytest.approx(60.0)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("soon", id="word"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("-5", id="negative"),
        pytest.param("1.5", id="fractional"),
        pytest.param("1e3", id="exponent"),
        pytest.param("Sun, 32 Nov 1994 08:49:37 GMT", id="impossible-day"),
        pytest.param("Sun, 06 Nov 1994 25:49:37 GMT", id="impossible-hour"),
        pytest.param("Sun, 06 Nov 99999 08:49:37 GMT", id="year-out-of-range"),
    ],
)
def test_garbage_gives_none(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_non_ascii_digit_gives_none() -> None:
    assert parse_retry_after("²", now=NOW) is None


def test_missing_header_gives_none() -> None:
    assert parse_retry_after(None, now=NOW) is None
