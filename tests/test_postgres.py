"""A register shared by several clerks on PostgreSQL: created on first use in its schema,
append-only in the database, clerks who may record but not alter, the database role as
actor, and one clear line for every way the server can fail us."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from tests.conftest import PG_ADMIN, fresh_postgres_url
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.storage import APPEND_ONLY

DOCS = Path(__file__).resolve().parent.parent / "docs"
SERVER = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]  # host:port of the test server


def twinflow(db: str, *args: str, actor: str | None = "clerk-a") -> Result:
    env = {"TWINFLOW_DB": None, "TWINFLOW_ACTOR": actor}
    return CliRunner().invoke(cli, ["--db", db, *args], env=env, catch_exceptions=False)


def open_case(db: str, slug: str = "coevorden-brest") -> None:
    result = twinflow(
        db, "open", slug, "--workflow", "twinning", "--title", "Twinning",
        "--party", "Coevorden", "--party", "Brest", "--by", "council", "--on", "2000",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def execute(url: str, statement: str, *params: Any) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


@pytest.fixture
def pg_url(postgres_admin: Any) -> Iterator[str]:
    """A new, empty PostgreSQL database."""
    yield from fresh_postgres_url(postgres_admin)


@pytest.fixture
def clerk(postgres_admin: Any) -> Iterator[str]:
    """A login role of its own (dropped after the databases it has rights in)."""
    name = f"clerk_{uuid.uuid4().hex[:10]}"
    postgres_admin.execute(f'CREATE ROLE "{name}" LOGIN')
    yield name
    postgres_admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def shared(clerk: str, postgres_admin: Any) -> Iterator[str]:
    """A register opened by its owner, in a database the clerk role outlives."""
    for url in fresh_postgres_url(postgres_admin):
        open_case(url)
        yield url


def as_role(url: str, role: str) -> str:
    return url.replace("://postgres@", f"://{role}@", 1)


# ---------------------------------------------------------------------------- first use


def test_the_register_is_created_on_first_use_in_the_schema_named_in_the_url(
    pg_url: str,
) -> None:
    url = f"{pg_url}?schema=register_2024"
    open_case(url)
    tables = rows(pg_url, "SELECT schemaname, tablename FROM pg_tables WHERE tablename "
                  "LIKE 'twinflow%%' ORDER BY 2")  # fmt: skip
    assert {schema for schema, _ in tables} == {"register_2024"}
    assert {name for _, name in tables} >= {
        "twinflow_events", "twinflow_meta", "twinflow_cases", "twinflow_audit",
    }  # fmt: skip
    triggers = rows(pg_url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1")
    assert triggers == [("twinflow_events_append_only",), ("twinflow_events_stored_by",)]
    assert twinflow(url, "status", "coevorden-brest").exit_code == 0
    # The public schema holds no register.
    result = twinflow(pg_url, "status", "coevorden-brest")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: no register at {pg_url}: record something first (twinflow open ...), "
        "or point --db / TWINFLOW_DB at your register\n",
    )


def test_admin_install_creates_the_register_once_on_either_backend(db: str) -> None:
    for _ in range(2):
        result = twinflow(db, "admin", "install")
        assert (result.exit_code, result.stdout) == (0, f"the register at {db} is ready\n")
    assert twinflow(db, "list").exit_code == 0  # a register, and an empty one
    assert Register.at(db).list_cases() == []


def test_reading_an_empty_database_creates_nothing(pg_url: str) -> None:
    result = twinflow(pg_url, "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no register at {pg_url}: ")
    assert rows(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (
            "?schema=Register-1",
            "schema 'Register-1' in the database URL is not a plain PostgreSQL name: use "
            "lower-case letters, digits and underscores, e.g. ?schema=register",
        ),
        (
            "?search_path=x",
            "database URL 'postgresql://postgres@127.0.0.1:5432/x?search_path=x' has an "
            "unknown option 'search_path': twinflow understands ?schema=NAME",
        ),
    ],
)
def test_a_malformed_database_url_is_a_usage_error(suffix: str, message: str) -> None:
    result = twinflow(f"postgresql://postgres@127.0.0.1:5432/x{suffix}", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")


# ---------------------------------------------------------------------------- append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE twinflow_events SET topic = 'forged'",
        "DELETE FROM twinflow_events",
        "TRUNCATE twinflow_events",
    ],
)
def test_the_database_refuses_to_change_or_delete_stored_events(
    pg_url: str, statement: str
) -> None:
    open_case(pg_url)
    before = rows(pg_url, "SELECT originator_id, originator_version, state FROM twinflow_events")
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        execute(pg_url, statement)  # as the owner, a superuser: only the trigger stands in the way
    assert refused.value.diag.message_primary == APPEND_ONLY
    after = rows(pg_url, "SELECT originator_id, originator_version, state FROM twinflow_events")
    assert after == before


# ---------------------------------------------------------------------------- clerks


def grant(url: str, role: str) -> Result:
    return twinflow(url, "admin", "grant-clerk", role)


def test_a_granted_clerk_records_as_itself_and_may_not_alter_or_delete(
    shared: str, clerk: str
) -> None:
    result = grant(shared, clerk)
    assert (result.exit_code, result.stdout) == (
        0,
        f"{clerk} may now record in and read {shared}, but not alter or delete\n",
    )
    mine = as_role(shared, clerk)
    result = twinflow(
        mine, "decide", "coevorden-brest", "suspend", "--party", "Brest", "--by", "executive",
        "--on", "2022", actor="A. de Vries",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    history = twinflow(mine, "history", "coevorden-brest", "--format", "json").stdout
    assert '"actor": "' + clerk + '",\n    "on_behalf_of": "A. de Vries"' in history
    audit = twinflow(mine, "audit", "--actor", "A. de Vries", "--format", "json")
    assert audit.exit_code == 0, audit.stderr
    assert f'"actor": "{clerk}"' in audit.stdout
    assert twinflow(mine, "list").exit_code == 0
    before = rows(shared, "SELECT count(*) FROM twinflow_events")
    for statement in (
        "UPDATE twinflow_events SET topic = 'forged'",
        "DELETE FROM twinflow_events",
        "TRUNCATE twinflow_events",
        "INSERT INTO twinflow_meta VALUES ('forged', 'yes')",
        "INSERT INTO twinflow_snapshots VALUES (gen_random_uuid(), 99, 'x', ''::bytea)",
        "ALTER TABLE twinflow_events DISABLE TRIGGER USER",
        "DROP TRIGGER twinflow_events_append_only ON twinflow_events",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            execute(mine, statement)
    assert rows(shared, "SELECT count(*) FROM twinflow_events") == before


def test_a_role_without_rights_gets_one_line_saying_who_can_grant_them(
    shared: str, clerk: str
) -> None:
    result = twinflow(as_role(shared, clerk), "note", "coevorden-brest", "visit", "--on",
                      "2019", "--summary", "a visit")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: PostgreSQL user '{clerk}' lacks the rights for this in "
        f"{as_role(shared, clerk)} (permission denied for table twinflow_meta): ask the "
        "register's owner to run "
        f"`twinflow admin grant-clerk {clerk}`\n"
    )


def test_revoke_clerk_takes_every_right_back(shared: str, clerk: str) -> None:
    assert grant(shared, clerk).exit_code == 0
    result = twinflow(shared, "admin", "revoke-clerk", clerk)
    assert (result.exit_code, result.stdout) == (0, f"{clerk} may no longer record in or "
                                                    f"read {shared}\n")  # fmt: skip
    result = twinflow(as_role(shared, clerk), "status", "coevorden-brest")
    assert result.exit_code == 1
    assert "permission denied" in result.stderr


def test_grant_clerk_names_a_missing_role_and_changes_nothing(shared: str) -> None:
    result = grant(shared, "nobody_here")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "Error: there is no PostgreSQL role 'nobody_here': create it first (createuser "
        "--pwprompt nobody_here), then grant again\n",
    )


def test_grant_clerk_on_a_sqlite_register_is_a_usage_error(tmp_path: Path) -> None:
    result = grant(str(tmp_path / "register.db"), "anna")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: the register {tmp_path / 'register.db'} is a SQLite file, which has no "
        "database roles: clerks need a PostgreSQL register (--db postgresql://...)\n"
    )


def privileges(url: str, role: str) -> set[tuple[str, ...]]:
    query = (
        "SELECT 'table', table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = %s UNION SELECT 'function', routine_name, privilege_type FROM "
        "information_schema.role_routine_grants WHERE grantee = %s UNION SELECT 'sequence', "
        "c.relname, p FROM pg_class c, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p "
        "WHERE c.relkind = 'S' AND has_sequence_privilege(%s, c.oid, p)"
    )
    return set(rows(url, query, role, role, role))


def test_the_sql_file_in_the_docs_gives_the_same_rights_as_grant_clerk(
    shared: str, clerk: str, postgres_admin: Any
) -> None:
    other = f"clerk_{uuid.uuid4().hex[:10]}"
    postgres_admin.execute(f'CREATE ROLE "{other}" LOGIN')
    try:
        assert grant(shared, clerk).exit_code == 0
        script = (DOCS / "grant-clerk.sql").read_text().replace(':"clerk"', f'"{other}"')
        script = script.replace(':"dbname"', f'"{shared.rsplit("/", 1)[1]}"')
        with psycopg.connect(shared, autocommit=True) as conn:
            conn.execute(script.encode())
        assert privileges(shared, other) == privileges(shared, clerk)
        assert ("table", "twinflow_events", "INSERT") in privileges(shared, other)
        result = twinflow(as_role(shared, other), "note", "coevorden-brest", "visit", "--on",
                          "2019", "--summary", "a visit")  # fmt: skip
        assert result.exit_code == 0, result.stderr
    finally:
        execute(shared, f'DROP OWNED BY "{other}"')
        postgres_admin.execute(f'DROP ROLE "{other}"')


def test_an_event_written_past_twinflow_with_a_made_up_actor_is_found(
    shared: str, clerk: str
) -> None:
    assert grant(shared, clerk).exit_code == 0
    check = twinflow(shared, "admin", "check-actors")
    assert (check.exit_code, check.stdout, check.stderr) == (0, "", "")
    # The clerk writes an event of its own making, naming the owner as its actor.
    owner = Register.at(shared)
    case = owner.get_case("coevorden-brest")
    case.note({"kind": "visit", "on": "2019", "summary": "forged", "party": None,
               "sources": []}, "postgres", None)  # fmt: skip
    forged = owner.events.mapper.to_stored_event(case.collect_events()[0])
    owner.close()
    execute(as_role(shared, clerk), "INSERT INTO twinflow_events (originator_id, "
         "originator_version, topic, state) VALUES (%s, %s, %s, %s)", forged.originator_id,
         forged.originator_version, forged.topic, forged.state)  # fmt: skip
    check = twinflow(shared, "admin", "check-actors")
    assert check.exit_code == 1
    assert check.stdout == (
        "position 3 (twinflow:case:noted #2) names 'postgres' as actor, but was stored by "
        f"the database role '{clerk}'\n"
    )
    assert check.stderr == (
        f"Error: 1 event(s) in {shared} name an actor other than the role that stored them: "
        "they were written past twinflow; see the lines above\n"
    )


# ---------------------------------------------------------------------------- identity


def test_the_actor_is_the_database_role_and_the_named_clerk_is_kept_beside_it(db: str) -> None:
    open_case(db)
    twinflow(db, "note", "coevorden-brest", "visit", "--on", "2019", "--summary", "visit",
             actor="postgres")  # fmt: skip
    twinflow(db, "note", "coevorden-brest", "letter", "--on", "2020", "--summary", "letter",
             actor=None)  # fmt: skip
    history = Register.at(db).history("coevorden-brest")
    recorded = [(h["actor"], h["on_behalf_of"]) for h in history]
    if db.startswith("postgresql://"):
        assert recorded == [("postgres", "clerk-a"), ("postgres", None), ("postgres", None)]
    else:
        me = getpass.getuser()
        assert recorded == [("clerk-a", None), ("postgres", None), (me, None)]


# ---------------------------------------------------------------------------- failures


def test_an_unreachable_server_is_one_line() -> None:
    result = twinflow("postgresql://postgres@127.0.0.1:1/test", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "Error: cannot reach the PostgreSQL server at 127.0.0.1:1 (Connection refused): check "
        "that it runs and that the host and port in --db are right\n",
    )


def test_a_missing_database_is_one_line(postgres_admin: Any) -> None:
    result = twinflow(f"postgresql://postgres@{SERVER}/no_such_register", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"Error: the PostgreSQL database 'no_such_register' does not exist on {SERVER}: "
        "create it (createdb no_such_register) or fix the database name in --db\n",
    )


def test_a_missing_role_is_one_line(shared: str) -> None:
    before = rows(shared, "SELECT count(*) FROM twinflow_events")
    result = twinflow(as_role(shared, "no_such_clerk"), "note", "coevorden-brest", "visit",
                      "--on", "2019", "--summary", "a visit")  # fmt: skip
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"Error: PostgreSQL at {SERVER} refused user 'no_such_clerk' (role \"no_such_clerk\" "
        "does not exist): check the user name and password in --db\n",
    )
    assert rows(shared, "SELECT count(*) FROM twinflow_events") == before


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A private PostgreSQL server that checks passwords (the test server trusts everyone
    on 127.0.0.1, so a wrong password cannot fail there): the URL with the right one."""
    bindir = Path("/usr/lib/postgresql")
    initdb = shutil.which("initdb") or next(iter(sorted(bindir.glob("*/bin/initdb"))), None)
    if initdb is None:
        pytest.skip("no initdb here to start a server that checks passwords")
    run_as = [] if os.geteuid() else ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="twinflow-pw-"))
    (folder / "pw").write_text("s3cret\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data, pg_ctl = folder / "data", Path(initdb).with_name("pg_ctl")
    steps = [
        [str(initdb), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
         f"--pwfile={folder / 'pw'}", "-N"],
        [str(pg_ctl), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
    ]  # fmt: skip
    try:
        if run_as:
            subprocess.run(["chown", "-R", "postgres", str(folder)], check=True)
        for step in steps:
            subprocess.run([*run_as, *step], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL server here ({exc})")
    yield f"postgresql://postgres:s3cret@127.0.0.1:{port}/postgres"
    subprocess.run([*run_as, str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)


def test_a_wrong_password_is_one_line_and_the_right_one_works(password_server: str) -> None:
    wrong = password_server.replace(":s3cret@", ":wrong@")
    server = password_server.split("@", 1)[1].rsplit("/", 1)[0]
    result = twinflow(wrong, "list")
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"Error: PostgreSQL at {server} refused user 'postgres' (password authentication "
        'failed for user "postgres"): check the user name and password in --db\n',
    )
    open_case(password_server)
    assert twinflow(password_server, "status", "coevorden-brest").exit_code == 0
    # The password may come from PGPASSWORD rather than the URL.
    without = password_server.replace(":s3cret@", "@")
    runner = CliRunner(env={"PGPASSWORD": "s3cret", "TWINFLOW_DB": None})
    assert runner.invoke(cli, ["--db", without, "status", "coevorden-brest"]).exit_code == 0


def start_writer(url: str, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TWINFLOW_DB": url, "TWINFLOW_ACTOR": "clerk-a", "PGAPPNAME": name}
    command = [sys.executable, "-m", "twinflow", "note", "coevorden-brest", "letter", "--on",
               "2020", "--summary", "the letter"]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_when_waiting(admin: Any, name: str, writer: subprocess.Popen[str], *, times: int) -> int:
    """Terminate the writer's server connection each time it waits for the insert lock."""
    killed, deadline = 0, time.monotonic() + 60
    while killed < times and writer.poll() is None and time.monotonic() < deadline:
        for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (name,),
        ).fetchall():
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed += 1
        time.sleep(0.02)
    return killed


def letters(url: str) -> int:
    register = Register.at(url)
    found = sum(1 for e in register.get_case("coevorden-brest").entries if e.kind == "noted")
    register.close()
    return found


@pytest.mark.parametrize("comes_back", [True, False])
def test_a_connection_killed_mid_command_records_once_or_not_at_all(
    shared: str, comes_back: bool
) -> None:
    name = f"twinflow-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(shared) as holder, psycopg.connect(shared, autocommit=True) as admin:
        holder.execute("LOCK TABLE twinflow_events IN EXCLUSIVE MODE")  # the writer will wait
        writer = start_writer(shared, name)
        killed = kill_when_waiting(admin, name, writer, times=1 if comes_back else 100)
        if comes_back:
            holder.rollback()  # the server is back to normal
        out, err = writer.communicate(timeout=60)
        holder.rollback()
    assert killed >= 1
    if comes_back:
        # eventsourcing tried again on a new connection, and the letter is there once.
        assert (writer.returncode, err) == (0, ""), err
        assert out.startswith("noted letter on coevorden-brest (#2)")
        assert letters(shared) == 1
    else:
        assert (writer.returncode, out) == (1, "")
        assert err.startswith(f"Error: lost the connection to the PostgreSQL server at {SERVER}")
        assert err.endswith(
            "a save is all or nothing, so check with `twinflow history CASE` before you try again\n"
        )
        assert len(err.splitlines()) == 1
        assert letters(shared) == 0
