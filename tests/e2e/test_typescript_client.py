"""A TypeScript client generated from the committed schema type-checks strictly and works against the running service.

Front-end teams are the main users of a backend-for-frontend, so this does what one would: openapi-typescript turns
`openapi/schema.yaml` into `paths` types, `tsc --strict --noEmit` checks a small openapi-fetch client against them
(`tests/e2e/typescript/client.ts`), and the client, compiled to JavaScript, runs under Node against the service and
prints what it saw (a product overview, every page of products by following `next`, the typed problem of a 404).
`misuse.ts` must fail the same type check with exactly the errors marked in it, so the check cannot pass vacuously.

The types are generated on every run, not committed: the schema is already the golden file
(`tests/api/test_schema.py`), the generator is pinned in `package-lock.json`, and generating takes under a second, so
a committed copy would only be a second golden file to regenerate on each schema change. `npm ci` runs only when
`package-lock.json` changed since the last install into `tests/e2e/typescript/node_modules` (ignored by git). Node
and npm are required: without them this fails, it does not skip (`.ci/run` installs Debian's `nodejs` and `npm`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "openapi" / "schema.yaml"
PROJECT = Path(__file__).resolve().parent / "typescript"
LOCKFILE = PROJECT / "package-lock.json"
NODE_MODULES = PROJECT / "node_modules"
INSTALLED_FROM = NODE_MODULES / ".tributary-installed-from"  # the sha256 of the lockfile node_modules came from
SOURCES = ("package.json", "tsconfig.json", "tsconfig.misuse.json", "node-globals.d.ts", "client.ts", "misuse.ts")
NPM_TIMEOUT = 300.0  # a cold install downloads ~45 MB; with the cache it takes seconds
TOOL_TIMEOUT = 120.0
# `misuse.ts(13,17): error TS2345: ...` and `// expect TS2345` at the end of a line of misuse.ts.
TSC_ERROR = re.compile(r"^misuse\.ts\((\d+),\d+\): error (TS\d+):", re.MULTILINE)
EXPECTED_ERROR = re.compile(r"// expect (TS\d+)\s*$")


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"`{tool}` is not on PATH: install Node.js and npm (Debian: `apt-get install nodejs npm`, as .ci/run does)"
        )
    return path


def _run(args: list[str], *, cwd: Path, timeout: float = TOOL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "NPM_CONFIG_UPDATE_NOTIFIER": "false", "NPM_CONFIG_FUND": "false"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"


def _install_node_modules() -> None:
    """`npm ci` unless node_modules already came from this very lockfile; one installer at a time."""
    npm = _require("npm")
    with LOCKFILE.open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run in this tree may be installing too
        digest = hashlib.sha256(lock.read()).hexdigest()
        if INSTALLED_FROM.is_file() and INSTALLED_FROM.read_text() == digest:
            return
        # No package here needs an install script; --ignore-scripts keeps it that way.
        result = _run([npm, "ci", "--ignore-scripts", "--no-audit"], cwd=PROJECT, timeout=NPM_TIMEOUT)
        assert result.returncode == 0, f"npm ci failed:\n{_output(result)}"
        INSTALLED_FROM.write_text(digest)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of tests/e2e/typescript with fresh generated types in build/schema.d.ts, sharing node_modules.

    Working on a copy keeps concurrent runs from overwriting each other's generated and compiled files.
    """
    _require("node")
    _install_node_modules()
    workdir = tmp_path_factory.mktemp("typescript_client")
    for name in SOURCES:
        shutil.copy2(PROJECT / name, workdir / name)
    (workdir / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)

    generator = str(NODE_MODULES / ".bin" / "openapi-typescript")
    result = _run([generator, str(SCHEMA), "--output", "build/schema.d.ts"], cwd=workdir)
    assert result.returncode == 0, f"openapi-typescript failed:\n{_output(result)}"
    # Its only output on success is a banner and the one generated file; anything else is about the schema.
    assert "warn" not in _output(result).lower(), f"openapi-typescript warned:\n{_output(result)}"
    assert "export interface paths" in (workdir / "build" / "schema.d.ts").read_text()
    return workdir


def _tsc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(NODE_MODULES / ".bin" / "tsc"), *args], cwd=project)


def test_client_type_checks_strictly_against_generated_types(project: Path) -> None:
    result = _tsc(project, "--strict", "--noEmit", "--project", "tsconfig.json")

    assert result.returncode == 0, f"tsc found errors in client.ts:\n{_output(result)}"


def test_type_check_fails_on_each_misuse_of_generated_types(project: Path) -> None:
    source_lines = (project / "misuse.ts").read_text().splitlines()
    expected = sorted(
        (number, match.group(1))
        for number, line in enumerate(source_lines, start=1)
        if (match := EXPECTED_ERROR.search(line))
    )
    assert len(expected) >= 5, "misuse.ts lost its marked mistakes"

    result = _tsc(project, "--strict", "--noEmit", "--project", "tsconfig.misuse.json")

    found = sorted((int(line), code) for line, code in TSC_ERROR.findall(result.stdout))
    assert result.returncode != 0, f"tsc accepted misuse.ts:\n{_output(result)}"
    assert found == expected, f"tsc's errors are not the marked ones:\n{_output(result)}"


@pytest.fixture(scope="module")
def client_output(project: Path, live_service: str) -> dict[str, Any]:
    """What client.ts, compiled to build/js and run under Node, printed about the live service."""
    # The type check is its own test above; here tsc only strips the types.
    compiled = _tsc(project, "--project", "tsconfig.json", "--noCheck")
    assert compiled.returncode == 0, f"tsc could not compile client.ts:\n{_output(compiled)}"

    result = _run([_require("node"), "build/js/client.js", live_service], cwd=project)

    assert result.returncode == 0, f"the TypeScript client failed:\n{_output(result)}"
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def test_typescript_client_reads_product_overview(client_output: dict[str, Any]) -> None:
    overview = client_output["overview"]

    assert overview["status"] == 200
    assert overview["id"] == 7
    assert overview["sku"] == "SKU-00007"
    assert set(overview["price"]) == {"amount", "currency"}
    assert re.fullmatch(r"[A-Z]{3}", overview["price"]["currency"])
    assert overview["converted_currency"] == "GBP"
    assert isinstance(overview["in_stock"], bool)
    assert isinstance(overview["review_count"], int)
    assert overview["missing"] == []


def test_typescript_client_follows_next_through_every_page(client_output: dict[str, Any]) -> None:
    pages = client_output["pages"]

    assert [page["status"] for page in pages] == [200, 200, 200]
    assert [page["ids"] for page in pages] == [list(range(1, 51)), list(range(51, 101)), list(range(101, 121))]
    assert pages[-1]["next"] is None


def test_typescript_client_gets_typed_problem_for_unknown_product(client_output: dict[str, Any]) -> None:
    problem = client_output["problem"]

    assert problem["status"] == 404
    assert problem["content_type"] == "application/problem+json"
    assert problem["code"] == "not_found"
    assert problem["type"] == "urn:tributary:problem:not_found"
    assert problem["problem_status"] == 404
    assert problem["request_id"] == problem["request_id_header"]
    assert problem["message"] == "This product does not exist."  # the client's switch took the not_found branch
