"""Shared fixtures: every scenario runs on SQLite and on PostgreSQL through `db`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from twinflow.application import Register
from twinflow.cli import cli

PG_ADMIN = os.environ.get("TWINFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_connect(url: str) -> object:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[object]:
    """A connection to the test server, or a skip (a failure in CI) where there is none."""
    try:
        conn = _pg_connect(PG_ADMIN)
    except Exception as exc:  # any reason the server is not there
        reason = f"PostgreSQL not reachable at {PG_ADMIN} ({exc.__class__.__name__})"
        if IN_CI:
            pytest.fail(f"{reason}, but CI=true: the CI machine must run PostgreSQL")
        pytest.skip(f"{reason}: start PostgreSQL or set TWINFLOW_TEST_PG to run these tests")
    yield conn
    conn.close()  # type: ignore[attr-defined]


def fresh_postgres_url(admin: object) -> Iterator[str]:
    name = f"twinflow_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty register on each backend: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "register.db")
        return
    admin = request.getfixturevalue("postgres_admin")
    yield from fresh_postgres_url(admin)


@pytest.fixture
def register(db: str) -> Iterator[Register]:
    reg = Register.at(db, create=True)
    yield reg
    reg.close()


Invoke = Callable[..., Result]


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `twinflow --db DB ARGS...` in-process; stdout and stderr stay apart."""
    monkeypatch.setenv("TWINFLOW_ACTOR", "clerk-a")
    monkeypatch.delenv("TWINFLOW_DB", raising=False)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--db", db, *args], input=input,
                                  catch_exceptions=False)

    return invoke
