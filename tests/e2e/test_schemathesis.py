"""The running service agrees with its committed schema: schemathesis, every check, every operation, every phase.

schemathesis (its CLI, in a subprocess) generates requests from `openapi/schema.yaml` (examples, coverage of each
parameter's boundaries and of what violates them, random fuzzing, and stateful sequences that follow the schema's
links) and runs all its checks on every response: no 5xx, every status and content type and header documented,
every body valid against its schema, schema-valid requests accepted and schema-violating ones rejected, undeclared
methods answered 405 with `Allow`, and more. The seed and the number of examples are fixed, so a run is repeatable
and bounded (about 10 s per run on 2 cores).

The service runs under uvicorn with the demo upstreams (tests/e2e/conftest.py): with local settings, the same with
`DJANGO_DEBUG=true`, and with production settings behind a TLS proxy, as deployed (the required variables set,
`X-Forwarded-Proto: https` on every request, as the proxy would send it). The one documented behaviour a check
cannot know is excluded precisely, in tests/e2e/schemathesis_hooks.py: a 504 `deadline_exceeded` for a request
whose own tiny `Request-Timeout` (valid: any number above 0) had passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO_ROOT, keyed_service, running_service

pytestmark = pytest.mark.e2e

SEED = 20261127
MAX_EXAMPLES = 25  # per operation and phase
RUN_TIMEOUT = 300.0  # seconds; a run takes about 10 s: longer is a hang
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")

# Local settings allow anonymous calls (API_KEYS_REQUIRED is off there, by design): schemathesis' `ignored_auth`
# check, which expects the schema's security to be enforced, runs against production's settings only.
# not_a_server_error and positive_data_acceptance are replaced by the hooks' versions (schemathesis_hooks.py).
ANONYMOUS_ALLOWED = ["--exclude-checks", "not_a_server_error,positive_data_acceptance,ignored_auth"]
SETTINGS: dict[str, tuple[dict[str, str], list[str]]] = {
    # name: (the service's environment, extra schemathesis arguments)
    "local": ({}, ANONYMOUS_ALLOWED),
    # DEBUG changes no response: Django's debug pages never reach a client (api.problems.ProblemResponseMiddleware).
    "local-debug": ({"DJANGO_DEBUG": "true"}, ANONYMOUS_ALLOWED),
    "production": (
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_BEHIND_TLS_PROXY": "true",
        },
        ["--exclude-checks", "not_a_server_error,positive_data_acceptance", "--header", "X-Forwarded-Proto: https"],
    ),
}
# The runs whose service requires API keys (production's default): one made by `create_api_key` goes with every request.
KEYED = {"production"}


@pytest.mark.parametrize("settings_name", list(SETTINGS))
def test_the_service_passes_every_schemathesis_check(settings_name: str, tmp_path: Path) -> None:
    service_env, extra_args = SETTINGS[settings_name]
    schema = REPO_ROOT / "openapi" / "schema.yaml"
    command = [sys.executable, "-m", "schemathesis.cli", "--no-color", "run", str(schema)]
    command += ["--checks", "all"]  # minus what each run excludes (above)
    command += ["--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "2"]
    command += ["--request-timeout", "20", "--generation-database", "none", *extra_args]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}

    with ExitStack() as stack:
        if settings_name in KEYED:
            keyed = stack.enter_context(
                keyed_service(tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", env=service_env)
            )
            url, command = keyed.url, [*command, "--header", f"Authorization: Bearer {keyed.key}"]
        else:
            url = stack.enter_context(running_service(tmp_path, env=service_env))
        result = subprocess.run(
            [*command, "--url", url],
            cwd=tmp_path,  # schemathesis keeps its files in the working directory
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    report = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(report)
    assert result.returncode == 0, f"schemathesis found failures with {settings_name} settings:\n{report[-12000:]}"
    operations = sum(len(methods) for methods in yaml.safe_load(schema.read_text())["paths"].values())
    tested = f"Operations:       {operations} selected / {operations} total"
    assert tested in report, report[-3000:]  # every operation was tested


@pytest.mark.parametrize(
    ("headers", "code", "elapsed", "excused"),
    [
        ({"Request-Timeout": "5e-324"}, "deadline_exceeded", 0.002, True),  # the client's own deadline, passed
        ({"Request-Timeout": "0.5"}, "deadline_exceeded", 0.1, False),  # answered before the client's deadline
        ({"Request-Timeout": "0.001"}, "upstream_timeout", 0.5, False),  # an upstream's timeout is no excuse
        ({}, "deadline_exceeded", 11.0, False),  # no Request-Timeout: the server's own deadline never passes here
        ({"Request-Timeout": "x"}, "deadline_exceeded", 1.0, False),
    ],
)
def test_the_exclusion_excuses_only_a_deadline_the_client_asked_for(
    headers: dict[str, str], code: str, elapsed: float, excused: bool
) -> None:
    hooks = _load_hooks()
    response = SimpleNamespace(status_code=504, content=json.dumps({"code": code}).encode(), elapsed=elapsed)

    assert hooks._requested_deadline_passed(response, SimpleNamespace(headers=headers)) is excused


def _load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("schemathesis_hooks_under_test", HOOKS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DUPLICATE = {"field": "items", "code": "duplicate", "message": "Product 7 is listed twice."}
UNKNOWN = {"field": "items[0].product_id", "code": "unknown_product", "message": "There is no product 7."}


@pytest.mark.parametrize(
    ("errors", "body", "excused"),
    [
        ([UNKNOWN], {"items": [{"product_id": 7}]}, True),
        ([DUPLICATE], {"items": [{"product_id": 7}, {"product_id": 7, "note": "x"}]}, True),
        ([DUPLICATE, UNKNOWN], {"items": [{"product_id": 7}, {"product_id": 7}]}, True),
        ([DUPLICATE], {"items": [{"product_id": 7}, {"product_id": 8}]}, False),  # says duplicate, but is not
        ([{"field": "name", "code": "blank", "message": "."}], {"name": "", "items": []}, False),
        ([], {"items": []}, False),
    ],
)
def test_the_acceptance_check_excuses_only_what_no_schema_can_state(
    errors: list[dict[str, str]], body: dict[str, Any], excused: bool
) -> None:
    hooks = _load_hooks()
    response = SimpleNamespace(status_code=400, content=json.dumps({"errors": errors}).encode())

    assert hooks._only_what_no_schema_states(response, SimpleNamespace(body=body)) is excused
