"""The one direction of dependency: api/ uses upstreams/; upstreams/ never imports the web layer; api/ never
imports httpx. Checked on the source (every import statement, wherever it is), not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "upstreams": ("rest_framework", "adrf", "django.http", "drf_spectacular", "api"),
    "api": ("httpx", "httpx_aiohttp", "aiohttp"),
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == banned or module.startswith(banned + ".") for banned in FORBIDDEN[package]):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_dependency_direction(package: str) -> None:
    assert violations(package) == []


def test_the_check_itself_catches_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from rest_framework.response import Response\n    import httpx.client\n")

    assert imported_modules(module) == {"rest_framework.response", "httpx.client"}
