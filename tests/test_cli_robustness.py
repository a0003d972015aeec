"""User-facing robustness: missing output folders, read-only registers, where `demo` records,
and read models brought up to date by an import or restore."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.eventlog import _storage_message
from twinflow.storage import Location

FIXTURE = Path(__file__).parent / "fixtures" / "twinnings.csv"


def twinflow(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_error_line(result: Result, code: int, *parts: str) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for part in parts:
        assert part in lines[0]
    return lines[0]


@pytest.fixture
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWINFLOW_DB", raising=False)
    path = str(tmp_path / "story.db")
    assert twinflow("demo", "--db", path).exit_code == 0
    return path


# ------------------------------------------------------------------ 1. output folders


@pytest.mark.parametrize(
    "args",
    [
        ("workflows", "diagram", "twinning", "-o"),
        ("export", "-o"),
        ("export", "--format", "csv", "-o"),
    ],
)
def test_an_output_file_in_a_missing_folder_is_a_usage_error(
    demo_db: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    target = tmp_path / "nonexist" / "out.txt"
    result = twinflow("--db", demo_db, *args, str(target))
    one_error_line(result, 2, repr(str(target)), "does not exist", "create it first")
    assert not target.parent.exists()


# ------------------------------------------------------------------ 2. read-only registers


def test_a_register_that_cannot_be_opened_is_not_called_damaged(
    demo_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite3.connect

    def refuse(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if "story.db" in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", refuse)
    for command in (("status", "coevorden-brest"), ("list",), ("export",), ("verify",)):
        line = one_error_line(twinflow("--db", demo_db, *command), 1, "read-only", "writable")
        assert "damaged" not in line and "backup" not in line


def test_the_store_error_for_an_unwritable_register_names_the_fix(demo_db: str) -> None:
    location = Location(demo_db, "sqlite", Path(demo_db))
    for text in ("unable to open database file", "attempt to write a readonly database"):
        message = _storage_message(sqlite3.OperationalError(text), location)
        assert "copy the register to a writable folder" in message
        assert "backup" not in message


def test_a_damaged_file_is_still_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    line = one_error_line(twinflow("--db", str(path), "list"), 1)
    assert "read-only" not in line


# ------------------------------------------------------------------ 3. demo and --db


def test_demo_records_into_the_global_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWINFLOW_DB", raising=False)
    result = twinflow("--db", "x.db", "demo")
    assert result.exit_code == 0, result.output
    assert "in x.db" in result.stdout
    assert (tmp_path / "x.db").exists() and not (tmp_path / "twinflow-demo.db").exists()
    again = twinflow("--db", "x.db", "demo")
    one_error_line(again, 2, "'x.db' already exists")


def test_demo_refuses_two_different_dbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = twinflow("--db", "a.db", "demo", "--db", "b.db")
    one_error_line(result, 2, "'a.db'", "'b.db'", "give only one")
    assert not list(tmp_path.iterdir())
    assert twinflow("--db", "a.db", "demo", "--db", "a.db").exit_code == 0


def test_demo_ignores_twinflow_db_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = twinflow("demo", env={"TWINFLOW_DB": str(tmp_path / "real.db")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "twinflow-demo.db").exists() and not (tmp_path / "real.db").exists()


def test_demo_refuses_a_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = twinflow("--db", "postgresql://u:secret@localhost/db", "demo")
    line = one_error_line(result, 2, "new SQLite file")
    assert "secret" not in line


# ------------------------------------------------------------------ 4. views after import


def test_an_import_brings_the_views_up_to_the_log(run: Invoke, db: str) -> None:
    result = run("import", str(FIXTURE))
    assert result.exit_code == 0, result.output
    register = Register.at(db)
    try:
        last = register.events.recorder.max_notification_id()
        assert last and register.views.position() == last
    finally:
        register.close()


def test_a_restore_brings_the_views_up_to_the_log(demo_db: str, tmp_path: Path) -> None:
    backup = tmp_path / "backup.ndjson"
    assert twinflow("--db", demo_db, "export", "-o", str(backup)).exit_code == 0
    target = tmp_path / "restored.db"
    result = twinflow("--db", str(target), "restore", str(backup))
    assert result.exit_code == 0, result.output
    register = Register.at(str(target))
    try:
        last = register.events.recorder.max_notification_id()
        assert last and register.views.position() == last
    finally:
        register.close()


def test_an_empty_db_is_refused_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TWINFLOW_DB", raising=False)
    result = CliRunner().invoke(cli, ["--db", "", "status", "coevorden-brest"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: the register is named by an empty --db (or TWINFLOW_DB): give a file path "
        "such as twinflow.db, or a postgresql:// URL\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_list_before_a_case_was_opened_says_not_open_as_status_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWINFLOW_DB", raising=False)
    db = str(tmp_path / "r.db")
    runner = CliRunner()
    opened = runner.invoke(cli, ["--db", db, "open", "a-b", "--workflow", "twinning", "--title",
                                 "A–B", "--party", "A", "--party", "B", "--by", "council",
                                 "--on", "2000"])
    assert opened.exit_code == 0, opened.stderr
    listed = runner.invoke(cli, ["--db", db, "list", "--as-of", "1995"])
    status = runner.invoke(cli, ["--db", db, "status", "a-b", "--as-of", "1995"])
    assert listed.stdout.splitlines()[2].split()[:2] == ["a-b", "not"]
    assert "not open" in listed.stdout.splitlines()[2]
    assert status.stdout.startswith("a-b: not open")
