"""`make bench` works from a fresh clone: a one-second smoke run of the harness (with the Python load generator,
as a machine without wrk has). The figures are not judged here (benchmarks report, tests assert behaviour)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_benchmark_harness_runs_and_cleans_up() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            *("--only", "tributary,fastapi", "--connections", "8", "--runs", "1", "--duration", "1"),
            "--python-load",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "TARGETS" in result.stdout
    assert "every process it started has stopped" in result.stdout
    for name in ("tributary", "fastapi"):
        assert f"\n  {name} " in result.stdout
