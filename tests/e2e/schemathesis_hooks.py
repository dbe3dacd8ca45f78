"""schemathesis hooks for tests/e2e/test_schemathesis.py (loaded by path through SCHEMATHESIS_HOOKS).

A limit no schema can state: a request body over `MAX_REQUEST_BODY_BYTES` (256 KiB by default) is refused with a
documented 413 before it is read, whatever its content. Bodies that could be over it are not generated (`filter_body`).
And facts no schema can state: which product ids exist, and that a collection lists a product once (JSON Schema's
`uniqueItems` compares whole items, and two items with the same id and different notes differ). A collection naming a
product the catalog does not have is a documented 400 whose every error is `unknown_product`, and one naming a product
twice a 400 `duplicate` on `items`; `positive_data_acceptance` is replaced by the same check minus exactly those
answers (the duplicate one only when the request's body really repeats an id).

One documented behaviour no generic check can know: `Request-Timeout` is any number of seconds above 0 (up to 3600),
so `5e-324` is valid input, and a request whose own deadline passes before its upstreams answer is a documented
504 `deadline_exceeded`. `not_a_server_error` is replaced by the same check minus exactly that case: a 504 whose code
is `deadline_exceeded`, for a request that set `Request-Timeout`, answered no sooner than that timeout. Any other
5xx, or a deadline answer that came before the client's own timeout had passed, is still a failure.
"""

from __future__ import annotations

import ast
import json
import threading
from typing import Any

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

# CPython 3.11's `ast.parse` is not thread-safe ("SystemError: AST constructor recursion depth mismatch"):
# hypothesis parses source (a lambda's, to describe a strategy; a filter's, to analyse it) and `--workers 2` does that
# in two threads at once. One parse at a time in this (schemathesis') process, then.
_AST_LOCK = threading.Lock()
_parse = ast.parse


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _AST_LOCK:
        return _parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time

MAX_REQUEST_BODY_BYTES = 256 * 1024  # config/settings/base.py's default; the e2e service does not change it


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    try:  # ASCII-escaped: never shorter than what is sent
        return len(json.dumps(body, ensure_ascii=True).encode()) <= MAX_REQUEST_BODY_BYTES
    except (TypeError, ValueError):
        return True


@schemathesis.check
def positive_data_acceptance_but_unknown_products(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 400 and _only_what_no_schema_states(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)


def _only_what_no_schema_states(response: Any, case: Any) -> bool:
    """Every error is an unknown product, or the `duplicate` of a body whose items really repeat a product id."""
    try:
        errors = json.loads(response.content)["errors"]
    except (KeyError, TypeError, ValueError):
        return False
    return bool(errors) and all(
        error.get("code") == "unknown_product"
        or (error.get("code") == "duplicate" and error.get("field") == "items" and _repeats_a_product(case.body))
        for error in errors
    )


def _repeats_a_product(body: Any) -> bool:
    try:
        ids = [item["product_id"] for item in body["items"]]
    except (KeyError, TypeError):
        return False
    return len(ids) != len(set(ids))


@schemathesis.check
def not_a_server_error_but_a_requested_deadline(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 504 and _requested_deadline_passed(response, case):
        return None
    return not_a_server_error(ctx, response, case)


def _requested_deadline_passed(response: Any, case: Any) -> bool:
    headers = {name.lower(): value for name, value in (case.headers or {}).items()}
    try:
        requested = float(headers["request-timeout"])
        code = json.loads(response.content)["code"]
    except (KeyError, TypeError, ValueError):
        return False
    return code == "deadline_exceeded" and response.elapsed >= requested
