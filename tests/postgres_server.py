"""A throwaway PostgreSQL on loopback for the database tests (Debian's postgresql package; .ci/run installs it).

Not skipped when missing: the suite fails, naming the package. PostgreSQL refuses to run as root, so when the suite
runs as root `initdb` and `pg_ctl` run as the `postgres` user (the package creates it), in a temporary data
directory that user owns, on a free port and a private unix socket directory, with trust authentication.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

PACKAGE = "postgresql"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        pytest.fail(
            f"PostgreSQL is not installed: no /usr/lib/postgresql/<version>/bin/initdb (install Debian's {PACKAGE} "
            "package: apt-get install postgresql; .ci/run does)"
        )
    return Path(found[-1]).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL; yield a `postgres://` URL for its `postgres` superuser and database; stop and remove it."""
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="tributary-pg-"))
    data, sockets = base / "data", base / "sockets"
    data.mkdir()
    sockets.mkdir()
    if as_root:
        base.chmod(0o755)
        for path in (data, sockets):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", options, "-w", "start")
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        for _ in range(3):
            shutil.rmtree(base, ignore_errors=True)
            if not base.exists():
                break
            time.sleep(0.1)
