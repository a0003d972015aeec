"""PostgreSQL specifics: the first look at the server (who is connected, is the register
there), installing the register once, the rights of a clerk, and errors in one line."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Identifier, Literal

from twinflow import storage
from twinflow.errors import StorageError
from twinflow.storage import SCHEMA_VERSION, Location, lock_timeout

LOCK_FUNCTION = "twinflow_lock_events"
EVENTS_TABLE = "twinflow_events"  # eventsourcing names it after the application
STAMP = "stored_by"  # the column where the database names the role that stored an event
# Any fixed number will do: it only has to be the same in every twinflow process.
INSTALL_LOCK = 0x7477_696E_666C_6F77  # "twinflow"
# eventsourcing retries a failed insert 10 times; each try waits a tenth of the lock timeout.
INSERT_TRIES = 10


@dataclass(frozen=True)
class Probe:
    """What one look at the server tells: who we are and whether the register is there."""

    session_user: str
    exists: bool  # twinflow_meta is there
    installed: bool  # ... at this SCHEMA_VERSION


class Recorder(PostgresApplicationRecorder):
    """eventsourcing's recorder, in the register's schema, locking through a function, and
    taking a first look at the server before eventsourcing's pool connects.

    eventsourcing serialises inserts with LOCK TABLE ... IN EXCLUSIVE MODE, which PostgreSQL
    only allows to roles that may UPDATE, DELETE or TRUNCATE the table. A clerk may do none
    of these, so the lock is taken by a SECURITY DEFINER function owned by the register's
    owner, and clerks get EXECUTE on it instead."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str) -> None:
        settings: dict[str, Any] = datastore.pool.kwargs  # type: ignore[assignment]
        # Unqualified names (twinflow's own tables and triggers) resolve in the schema too;
        # set before eventsourcing opens the pool (it connects while constructing).
        settings["options"] = f"-c search_path={datastore.schema}"
        self.probe = look(settings, datastore.pool.timeout)
        super().__init__(datastore, events_table_name=events_table_name)
        wait_ms = max(100, lock_timeout() * 1000 // INSERT_TRIES)
        self.lock_table_statements = [
            SQL("SELECT {schema}.{function}({wait})").format(
                schema=Identifier(datastore.schema),
                function=Identifier(LOCK_FUNCTION),
                wait=Literal(wait_ms),
            )
        ]


def look(settings: dict[str, Any], timeout: float) -> Probe:
    """Connect once, directly: a refused connection then says why (eventsourcing's pool only
    says it could not get one in time), and one query tells who we are and what is there."""
    import psycopg
    from eventsourcing.persistence import OperationalError

    try:
        with psycopg.connect(**settings, connect_timeout=max(1, round(timeout))) as conn:
            return probe(conn)
    except psycopg.Error as exc:
        raise OperationalError(str(exc)) from None


def lock_function(schema: str, table: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {schema}.{LOCK_FUNCTION}(wait_ms integer) RETURNS void "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ BEGIN "
        "PERFORM set_config('lock_timeout', wait_ms || 'ms', true); "
        f"LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; END $$"
    )


def connect(location: Location) -> Any:
    """A connection of its own, outside eventsourcing's pool (for installing and granting)."""
    import psycopg
    from psycopg.rows import dict_row

    env = location.env()
    try:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            options=f"-c search_path={env['POSTGRES_SCHEMA']}",
            autocommit=True,
            row_factory=dict_row,
        )
    except psycopg.Error as exc:
        raise StorageError(explain(str(exc), location)) from None


def open_register(
    location: Location, events: Any, create_views: Callable[[], None], *, create: bool
) -> str:
    """Install the register if asked and needed (once, under a lock); the session user."""
    found: Probe = events.recorder.probe
    if not found.exists and not create:
        raise StorageError(
            f"no register at {location.describe()}: record something first "
            "(twinflow open ...), or point --db / TWINFLOW_DB at your register"
        )
    if create and not found.installed:
        import psycopg

        with connect(location) as conn, install_lock(conn, location):
            try:
                again = probe(conn)
            except psycopg.Error as exc:
                raise StorageError(explain(str(exc), location)) from None
            if not again.installed:
                install(location, events, create_views)
    return found.session_user


def probe(conn: Any) -> Probe:
    row = conn.execute(
        "SELECT session_user AS who, to_regclass('twinflow_meta') IS NOT NULL AS ready"
    ).fetchone()
    installed = False
    if row["ready"]:
        meta = conn.execute("SELECT value FROM twinflow_meta WHERE key = 'schema'").fetchone()
        installed = meta is not None and meta["value"] == SCHEMA_VERSION
    return Probe(str(row["who"]), bool(row["ready"]), installed)


@contextmanager
def install_lock(conn: Any, location: Location) -> Iterator[None]:
    """Hold an advisory lock while installing: concurrent CREATE OR REPLACE FUNCTION and
    CREATE TYPE in several first-time processes fail ('tuple concurrently updated')."""
    import psycopg

    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (INSTALL_LOCK,))
    except psycopg.Error as exc:
        raise StorageError(explain(str(exc), location)) from None
    try:
        yield
    finally:
        with suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (INSTALL_LOCK,))


def install(location: Location, events: Any, create_views: Callable[[], None]) -> None:
    """eventsourcing's tables, the read models, then twinflow's guards and marker, in the
    register's schema; the marker comes last so that a failed install is tried again."""
    schema = schema_of(location)
    table = events.recorder.events_table_name
    datastore = events.recorder.datastore
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
    events.recorder.create_table()
    if events.snapshots is not None:
        events.snapshots.recorder.create_table()
    create_views()
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(lock_function(schema, table))
        cursor.execute(f"REVOKE ALL ON FUNCTION {schema}.{LOCK_FUNCTION}(integer) FROM PUBLIC")
        for statement in stamp_statements(schema, table):
            cursor.execute(statement)
        storage.install(cursor, "postgres", table)


def stamp_statements(schema: str, table: str) -> list[str]:
    """The database writes down which role stored each event, whatever the row says: an
    event whose actor is not that role was not recorded through twinflow."""
    return [
        f"ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS {STAMP} text NOT NULL "
        "DEFAULT session_user",
        f"CREATE OR REPLACE FUNCTION {schema}.twinflow_stamp_role() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN NEW.{STAMP} := session_user; RETURN NEW; END $$",
        f"DROP TRIGGER IF EXISTS {table}_{STAMP} ON {schema}.{table}",
        f"CREATE TRIGGER {table}_{STAMP} BEFORE INSERT ON {schema}.{table} "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.twinflow_stamp_role()",
    ]


def schema_of(location: Location) -> str:
    return location.env()["POSTGRES_SCHEMA"]


def explain(text: str, location: Location) -> str:
    """One line saying what went wrong with the server and what to do."""
    env = location.env()
    server = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"
    user, dbname = env["POSTGRES_USER"], env["POSTGRES_DBNAME"]
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    reason = first.split("FATAL:", 1)[-1].strip()
    reason = re.sub(r"^connection failed: connection to server at .*? failed: ", "", reason)
    if "does not exist" in reason and "database" in reason:
        return (
            f"the PostgreSQL database {dbname!r} does not exist on {server}: create it "
            f"(createdb {dbname}) or fix the database name in --db"
        )
    if "password authentication failed" in reason or (
        "role" in reason and "does not exist" in reason
    ):
        return (
            f"PostgreSQL at {server} refused user {user!r} ({reason}): check the user name "
            "and password in --db"
        )
    if "permission denied" in reason or "must be owner" in reason:
        return (
            f"PostgreSQL user {user!r} lacks the rights for this in {location.describe()} "
            f"({reason}): "
            f"ask the register's owner to run `twinflow admin grant-clerk {user}`"
        )
    if any(
        sign in reason
        for sign in (
            "Connection refused",
            "could not translate host",
            "failed to resolve host",
            "timeout expired",
            "No route to host",
            "couldn't get a connection",
        )
    ):
        return (
            f"cannot reach the PostgreSQL server at {server} ({reason}): check that it runs "
            "and that the host and port in --db are right"
        )
    if any(
        sign in reason
        for sign in (
            "terminating connection",
            "server closed the connection",
            "consuming input failed",
            "the connection is lost",
            "connection is closed",
            "the server is shutting down",
        )
    ):
        return (
            f"lost the connection to the PostgreSQL server at {server} ({reason}): a save is "
            "all or nothing, so check with `twinflow history CASE` before you try again"
        )
    return (
        f"cannot use the PostgreSQL register {location.describe()}: {reason}; check that the "
        "server runs, the database exists and the user may connect"
    )
