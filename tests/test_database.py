"""The database foundation, as an operator meets it: DATABASE_URL selects PostgreSQL (psycopg 3, pooled per worker)
or SQLite (the embedded default), migrations apply and the ORM round-trips on both, in a fresh process as a
deployment runs it, and a bad URL is a start-up problem listed with the others.

PostgreSQL is real: started by the suite from Debian's postgresql package (tests/postgres_server.py), never mocked
and never skipped (a missing package fails the suite, naming it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_startup_config import ENTRY_POINTS, clean_environment, start

ROOT = Path(__file__).resolve().parents[1]

# Run in the child after `migrate`: what Django's settings resolved to, and an ORM write, read, update and delete on
# a real model (django_migrations' own, so no app of ours is needed), also through the async ORM. `migrate` creates
# that table only when some migration is pending (none is until the first models land), so it is ensured here.
ROUND_TRIP = """
import asyncio, json
import django
django.setup()
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

recorder = MigrationRecorder(connection)
recorder.ensure_schema()
Migration = recorder.Migration
row = Migration.objects.create(app="tributary_probe", name="0001_round_trip")
assert Migration.objects.get(pk=row.pk).name == "0001_round_trip"
Migration.objects.filter(pk=row.pk).update(name="0002_updated")

async def read():
    return (await Migration.objects.aget(pk=row.pk)).name

updated = asyncio.run(read())
Migration.objects.filter(app="tributary_probe").delete()
print(json.dumps({
    "vendor": connection.vendor,
    "pool": connection.settings_dict["OPTIONS"].get("pool"),
    "application_name": connection.cursor().execute("SELECT current_setting('application_name')").fetchone()[0]
    if connection.vendor == "postgresql" else None,
    "updated": updated,
    "left": Migration.objects.filter(app="tributary_probe").count(),
}))
"""


def database_environment(**env: str) -> dict[str, str]:
    kept = {k: v for k, v in clean_environment("config.settings.local").items() if not k.startswith("DATABASE_")}
    return {**kept, "SQLITE_PATH": os.devnull, **env}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def migrate_and_round_trip(env: dict[str, str]) -> dict[str, object]:
    import json

    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_no_model_change_lacks_its_migration() -> None:
    result = manage(database_environment(), "makemigrations", "--check", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr


def test_postgresql_from_database_url_migrates_and_round_trips(postgres_url: str) -> None:
    found = migrate_and_round_trip(database_environment(DATABASE_URL=postgres_url, DATABASE_POOL_MAX_SIZE="4"))

    assert found["vendor"] == "postgresql"
    assert found["pool"] == {"min_size": 1, "max_size": 4, "timeout": 10.0}
    assert found["updated"] == "0002_updated"
    assert found["left"] == 0


def test_the_postgresql_scheme_alias_is_accepted(postgres_url: str) -> None:
    url = postgres_url.replace("postgres://", "postgresql://", 1) + "?sslmode=disable&application_name=tributary"

    found = migrate_and_round_trip(database_environment(DATABASE_URL=url))

    assert found["vendor"] == "postgresql"
    assert found["application_name"] == "tributary"  # the query's connection parameters reach psycopg


@pytest.mark.parametrize("url", [None, "sqlite:///{path}"])
def test_sqlite_is_the_default_and_a_sqlite_url_selects_a_file(url: str | None, tmp_path: Path) -> None:
    path = tmp_path / "tributary.sqlite3"
    env = database_environment(SQLITE_PATH=str(path))
    if url is not None:
        env = {**database_environment(), "DATABASE_URL": url.format(path=path)}

    found = migrate_and_round_trip(env)

    assert found["vendor"] == "sqlite"
    assert found["pool"] is None
    assert found["updated"] == "0002_updated"
    assert path.exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://u:p@127.0.0.1/db"}, "must start with postgres://, postgresql:// or sqlite:///"),
        ({"DATABASE_URL": "postgres://u@127.0.0.1:notaport/db"}, "DATABASE_URL="),
        ({"DATABASE_URL": "postgres://u@127.0.0.1:5432/"}, "must name the database"),
        ({"DATABASE_URL": "sqlite://"}, "must be sqlite:///relative/path or sqlite:////absolute/path"),
        ({"DATABASE_URL": "postgres://u@h/db", "DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE='0'"),
    ],
)
def test_a_bad_database_url_is_a_start_up_problem(env: dict[str, str], message: str) -> None:
    result = start(ENTRY_POINTS["manage.py check"](0), database_environment(**env))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output
    assert "Traceback" not in output


def test_a_bad_database_url_is_listed_with_the_other_problems() -> None:
    env = database_environment(DATABASE_URL="redis://127.0.0.1/0", AGGREGATE_DEADLINE="abc")

    result = start(ENTRY_POINTS["manage.py check"](0), env)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DATABASE_URL='redis://127.0.0.1/0'" in output
    assert "AGGREGATE_DEADLINE='abc'" in output
    assert "Traceback" not in output


def test_the_password_in_a_bad_url_is_not_printed() -> None:
    env = database_environment(DATABASE_URL="postgres://app:s3cret-pw@db.internal:5432/")

    output = start(ENTRY_POINTS["manage.py check"](0), env).stderr

    assert "must name the database" in output
    assert "s3cret-pw" not in output


def test_missing_postgresql_fails_naming_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import glob

    from tests import postgres_server

    monkeypatch.setattr(glob, "glob", lambda pattern: [])

    with pytest.raises(pytest.fail.Exception, match="Debian's postgresql package"):
        postgres_server._bin_dir()
