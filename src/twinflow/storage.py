"""Where the register lives: a database URL or path turned into eventsourcing settings, the
checks that a file really is a twinflow register, and the append-only guard."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twinflow.errors import InvalidInput, StorageError

DEFAULT_DB = "twinflow.db"
SCHEMA_VERSION = "1"
DEFAULT_LOCK_TIMEOUT = 5  # seconds; eventsourcing takes whole seconds
APPEND_ONLY = (
    "twinflow: the register is append-only: stored events cannot be changed or deleted; "
    "record a correction or retraction instead"
)
SQLITE_HEADER = b"SQLite format 3\x00"
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Location:
    """A register's database: a SQLite file or a PostgreSQL URL."""

    url: str
    kind: str  # sqlite | postgres
    path: Path | None = None  # as given, for messages
    absolute: Path | None = None  # from the folder it was given in

    @property
    def file(self) -> Path | None:
        """The SQLite file itself, wherever the process (or a worker it starts) is now: a
        relative path is the one it named in the folder it was given in."""
        return self.absolute or self.path

    def describe(self) -> str:
        return str(self.path) if self.path else _without_password(self.url)

    def env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            assert self.path is not None
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.file),
                "SQLITE_LOCK_TIMEOUT": str(lock_timeout()),
            }
        parts = urlsplit(self.url)
        dbname = parts.path.lstrip("/")
        if not dbname or not parts.hostname:
            raise InvalidInput(
                f"database URL {self.describe()!r} lacks a host or database name: "
                "use postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
            )
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or os.environ.get("USER", "postgres")),
            # libpq reads ~/.pgpass where the password is empty, but PGPASSWORD only where
            # none is given at all, and eventsourcing always gives one.
            "POSTGRES_PASSWORD": unquote(parts.password or os.environ.get("PGPASSWORD", "")),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": str(lock_timeout()),
            "POSTGRES_SCHEMA": self.schema(),
            # A command needs one connection at a time, two while installing.
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": "2",
            # Tables are created once, by twinflow, under a lock (clerks may not create).
            "CREATE_TABLE": "no",
            "APPLICATION_RECORDER_TOPIC": "twinflow.postgres:Recorder",
        }

    def schema(self) -> str:
        """The PostgreSQL schema of the register: ?schema=NAME in the URL, else public."""
        options = parse_qs(urlsplit(self.url).query, keep_blank_values=True)
        unknown = sorted(set(options) - {"schema"})
        if unknown:
            raise InvalidInput(
                f"database URL {self.describe()!r} has an unknown option {unknown[0]!r}: "
                "twinflow understands ?schema=NAME"
            )
        name = options.get("schema", ["public"])[-1]
        if not SCHEMA_NAME.match(name):
            raise InvalidInput(
                f"schema {name!r} in the database URL is not a plain PostgreSQL name: use "
                "lower-case letters, digits and underscores, e.g. ?schema=register"
            )
        return name


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def lock_timeout() -> int:
    raw = os.environ.get("TWINFLOW_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(
            f"TWINFLOW_LOCK_TIMEOUT {raw!r} is not a whole number of seconds: use e.g. 5"
        )
    return int(raw)


def locate(db: str | None) -> Location:
    """The register named by --db, else TWINFLOW_DB, else ./twinflow.db."""
    if db is not None and not db.strip():
        raise InvalidInput(
            "the register is named by an empty --db (or TWINFLOW_DB): give a file path such as "
            "twinflow.db, or a postgresql:// URL"
        )
    spec = db or os.environ.get("TWINFLOW_DB") or DEFAULT_DB
    if spec.startswith(("postgresql://", "postgres://")):
        return Location(spec, "postgres")
    if "://" in spec:
        raise InvalidInput(
            f"database {spec!r} is neither a file path nor a postgresql:// URL: "
            "use a path such as twinflow.db or postgresql://USER@HOST:5432/DBNAME"
        )
    return Location(spec, "sqlite", Path(spec), Path(spec).absolute())


def check_sqlite_file(path: Path, *, create: bool) -> None:
    """Refuse a path that cannot hold a register, before eventsourcing touches it."""
    if path.is_dir():
        raise StorageError(
            f"database {str(path)!r} is a folder: give a file path such as {path / DEFAULT_DB}"
        )
    if not path.exists():
        if not create:
            raise StorageError(
                f"no register at {str(path)!r}: record something first (twinflow open ...), "
                "or point --db / TWINFLOW_DB at your register"
            )
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise StorageError(
                f"cannot create the register {str(path)!r}: the folder "
                f"{str(folder)!r} does not exist; create it first"
            )
        if not os.access(folder, os.W_OK):
            raise StorageError(
                f"cannot create the register {str(path)!r}: the folder "
                f"{str(folder)!r} is not writable; choose another --db"
            )
        return
    # Read by SQLite, never opened here: closing a file of its own would drop the locks this
    # process's connections hold on it (POSIX's rule), and another process's SQLite could
    # then delete the write-ahead log under them (tests/test_concurrency.py).
    tables = _sqlite_tables(path)
    if tables and "twinflow_meta" not in tables:
        raise StorageError(
            f"{str(path)!r} is not a twinflow database (it holds other tables: "
            f"{', '.join(sorted(tables)[:5])}): choose another --db"
        )
    if create and not os.access(path, os.W_OK):
        raise StorageError(
            f"the register {str(path)!r} is read-only: ask for write access or work on a copy"
        )


def _sqlite_tables(path: Path) -> set[str]:
    try:
        uri = path.absolute().as_uri() + "?mode=ro"  # a name with # or ? stays a name
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    except sqlite3.DatabaseError as exc:
        if cannot_open(str(exc)):
            raise StorageError(not_writable_message(str(path), str(exc))) from None
        if not _has_sqlite_header(path):  # no connection can be using a file SQLite refuses
            raise StorageError(
                f"{str(path)!r} is not a twinflow database (not SQLite at all): "
                "point --db at your register, or choose a new file name"
            ) from None
        raise StorageError(
            f"{str(path)!r} is damaged or not a twinflow database ({exc}): restore it from a "
            "backup, or choose another --db"
        ) from None
    return {row[0] for row in rows}


def _has_sqlite_header(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def cannot_open(text: str) -> bool:
    """Whether SQLite's error means the file or its folder cannot be opened, not damage."""
    text = text.lower()
    return "unable to open database file" in text or "readonly" in text or "read-only" in text


def not_writable_message(where: str, text: str) -> str:
    return (
        f"cannot open the register {where!r} for writing ({text}): the file or its folder is "
        "read-only, and SQLite's write-ahead log needs to write beside the file; copy the "
        "register to a writable folder, or fix the permissions"
    )


def guard_statements(kind: str, tables: list[str]) -> list[str]:
    """DDL that makes the event tables append-only, for SQLite or PostgreSQL."""
    statements = []
    for table in tables:
        if kind == "sqlite":
            for action in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                    f"BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
                )
        else:
            statements.append(
                "CREATE OR REPLACE FUNCTION twinflow_append_only() RETURNS trigger "
                f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
            )
            statements.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            statements.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION twinflow_append_only()"
            )
    return statements


def guard_names(kind: str, table: str) -> list[str]:
    """The triggers guard_statements() puts on `table`, by name."""
    if kind == "sqlite":
        return [f"{table}_no_update", f"{table}_no_delete"]
    return [f"{table}_append_only"]


def missing_guards(cursor: Any, kind: str, table: str) -> list[str]:
    """The guards of `table` that are gone, disabled or no longer refuse with APPEND_ONLY;
    checked every time a register is opened, on either backend."""
    if kind == "sqlite":
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
            (table,),
        )
    else:
        cursor.execute(
            "SELECT t.tgname AS name, p.prosrc AS sql FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace "
            "AND t.tgenabled <> 'D'",
            (table,),
        )
    working = {row["name"] for row in cursor.fetchall() if APPEND_ONLY in (row["sql"] or "")}
    return [name for name in guard_names(kind, table) if name not in working]


def unguarded(where: str, missing: list[str]) -> StorageError:
    """Why a register whose guards are missing is refused (only `verify` opens it)."""
    return StorageError(
        f"the register {where} has lost its append-only guard{'s' if len(missing) > 1 else ''} "
        f"({', '.join(missing)}): the database was changed outside twinflow and its records "
        "may have been edited; run `twinflow verify` to check them, and "
        "`twinflow verify --reinstall-guards` to put the guards back once they hold"
    )


def installed(cursor: Any, kind: str) -> bool:
    """Whether install() already ran at this SCHEMA_VERSION (bump it when install() changes).

    Asked in a read transaction first because install() writes: in WAL mode SQLite refuses
    at once, without waiting for the lock timeout, a transaction that read and then writes
    while another connection writes."""
    probe = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'twinflow_meta'"
        if kind == "sqlite"
        else "SELECT 1 FROM pg_tables WHERE tablename = 'twinflow_meta' "
        "AND schemaname = current_schema()"
    )
    cursor.execute(probe)
    if cursor.fetchone() is None:
        return False
    cursor.execute("SELECT value FROM twinflow_meta WHERE key = 'schema'")
    row = cursor.fetchone()
    return row is not None and row["value"] == SCHEMA_VERSION


def install(cursor: Any, kind: str, event_table: str) -> None:
    """Create twinflow's own tables and guards next to eventsourcing's, once."""
    cursor.execute("CREATE TABLE IF NOT EXISTS twinflow_meta (key TEXT PRIMARY KEY, value TEXT)")
    for statement in guard_statements(kind, [event_table]):
        cursor.execute(statement)
    marker = "?" if kind == "sqlite" else "%s"
    cursor.execute(
        f"INSERT INTO twinflow_meta (key, value) VALUES ('schema', {marker}) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (SCHEMA_VERSION,),
    )


MOST_ATTACHED = 10  # SQLite's own limit of databases attached to one connection


@contextmanager
def attached(datastore: Any, files: Mapping[str, Path]) -> Iterator[Any]:
    """A write transaction on one of a SQLite register's connections, with each of `files`
    attached to it under its schema name for the transaction's duration (SQLite attaches
    only outside a transaction). The connection goes back to the pool as it came, even if
    an ATTACH fails."""
    if len(files) > MOST_ATTACHED:
        raise ValueError(f"SQLite attaches at most {MOST_ATTACHED} files, not {len(files)}")
    with datastore.get_connection(commit=True) as connection:
        done: list[str] = []
        try:
            with connection.cursor() as cursor:
                for name, path in files.items():
                    cursor.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
                    done.append(name)
            with connection.transaction(commit=True) as cursor:
                yield cursor
        finally:
            with connection.cursor() as cursor:
                for name in done:
                    with suppress(Exception):  # never in the way of the error that got here
                        cursor.execute(f"DETACH DATABASE {name}")
