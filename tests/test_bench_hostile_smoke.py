"""`make bench-hostile` works from a fresh clone: its two quickest sections (a smuggled second response, an upstream
Content-Type echoed) against this checkout. The figures are not judged here (benchmarks report, tests assert
behaviour); the harness must run, measure and stop what it started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_hostile_benchmark_harness_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/hostile.py", "--only", "3,7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "could not be measured" not in result.stdout
    assert "\n3. the upstream answers request 1 twice" in result.stdout
    assert "\n7. upstream Content-Type" in result.stdout
