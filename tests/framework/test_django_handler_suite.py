"""Django's own ASGI and handler tests (`tests/asgi/`, `tests/handlers/` of the installed version's source
distribution) pass against `TributaryASGIHandler`, except those listed, with the reason, in
`run_django_suite.DOES_NOT_APPLY`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.framework.run_django_suite import DOES_NOT_APPLY
from tests.framework.upstream_sources import django_tests_dir

RUNNER = Path(__file__).with_name("run_django_suite.py")
MODULES = ("asgi", "handlers")


def test_djangos_asgi_and_handler_tests_pass_against_our_handler() -> None:
    tests = django_tests_dir()

    result = subprocess.run(
        [sys.executable, str(RUNNER), str(tests), *MODULES],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    ran = re.search(r"^Ran (\d+) tests?", output, re.MULTILINE)
    assert ran is not None, output[-3000:]
    assert int(ran.group(1)) >= 70, output[-3000:]  # Django 5.2 has 73 here: the suite really ran
    skipped = re.findall(r"^test_\w+ \(([\w.]+)\)\S*.* skipped 'does not apply", output, re.MULTILINE)
    assert set(skipped) == set(DOES_NOT_APPLY)
