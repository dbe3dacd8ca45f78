"""Django's own test suite, from the source distribution of the installed version.

The sdist is downloaded once with pip (PyPI is reachable in CI) into a cache inside the virtual environment
(`<venv>/upstream-sdists/`, or `$TRIBUTARY_SDIST_CACHE`), and its `tests/` directory is extracted beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TRIBUTARY_SDIST_CACHE") or Path(sys.prefix) / "upstream-sdists")


def django_tests_dir() -> Path:
    """`tests/` of Django's sdist for the installed version (downloaded and extracted on first use)."""
    release = version("django")
    root = cache_dir()
    tests = root / f"django-{release}" / "tests"
    if (tests / "runtests.py").exists():
        return tests
    archive = root / f"django-{release}.tar.gz"
    if not archive.exists():
        root.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps"]
        subprocess.run(
            [*pip, f"django=={release}", "--dest", str(root)],
            check=True,
            timeout=600,
        )
    with tarfile.open(archive) as sdist:
        members = [m for m in sdist.getmembers() if m.name.startswith(f"django-{release}/tests/")]
        sdist.extractall(root, members=members, filter="data")
    return tests
