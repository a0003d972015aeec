"""Writing many stored events in ONE database transaction, in batches, on SQLite or
PostgreSQL: an import appends them (the store numbers them), a restore puts each back at its
old position. eventsourcing's `save()` needs every aggregate in memory at once, so large
files go through the recorder's table here instead, under the same lock `save()` takes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, PersistenceError, StoredEvent

from twinflow import logread, projection
from twinflow.errors import ConflictError, RuleViolation, StorageError
from twinflow.eventbytes import Record
from twinflow.exchange import Progress
from twinflow.projection import Rows
from twinflow.spill import BATCH, EVENTS
from twinflow.storage import attached

if TYPE_CHECKING:
    from twinflow.application import Register

WRITING = "writing"
RESTORING = "restoring"
# Events copied per statement from an import's spill file (a step of the progress bar).
CHUNK = 20_000
SPILL_SCHEMA = "twinflow_spill"  # the spill files' schema names, numbered


def append(
    register: Register,
    batches: Iterable[Sequence[StoredEvent]],
    total: int,
    progress: Progress | None = None,
) -> int:
    """Append the events in one transaction; a case another writer touched meanwhile fails it."""
    table = Table(register)
    done = 0
    with table.transaction() as cursor:
        for batch in batches:
            table.insert(cursor, batch)
            done += len(batch)
            if progress:
                progress(WRITING, len(batch), total)
    return done


class Writing:
    """An import's write transaction on SQLite. The register's connection attaches the spill
    files and copies each one's events with INSERT ... SELECT in chunks, in order (no row
    passes through Python: a third of the write's time at 100,000 events, fix 18), and
    with `views` the read models' rows each holds (fix 30). It can begin before the spill
    files are filled (`begin`: SQLite attaches only outside a transaction, and a process
    filling one holds it locked till done), copy each as soon as it is complete (`copy`)
    while other processes still build theirs, and ends with `finish`; leaving it otherwise
    rolls everything back."""

    def __init__(self, register: Register, total: int, progress: Progress | None) -> None:
        self.register, self.table = register, Table(register)
        self.total, self.progress = total, progress
        self.stack = ExitStack()
        self.cursor: Any = None
        self.schemas: list[str] = []
        self.copied = 0  # spill files copied in, in order
        self.done = 0  # events
        # Whether the spill files' read-model rows are copied too: the caller's word, until
        # the first events are in and the read models turn out not to have seen every event
        # before them (another writer got in first: the catch-up after the import does it)
        self.views = False
        self.before: int | None = None  # the log's last position before this write
        self.viewed = False  # some spill file's rows are copied

    def __enter__(self) -> Writing:
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self.stack.__exit__(*exc)

    def begin(self, files: Sequence[Path]) -> None:
        """The transaction, with every spill file attached (complete or not)."""
        attach = {f"{SPILL_SCHEMA}{number}": path for number, path in enumerate(files)}
        self.cursor = self.stack.enter_context(self.table.transaction(attach=attach))
        self.schemas = list(attach)

    def copy(self, upto: int) -> None:
        """Copy the spill files up to number `upto` (complete by now)."""
        cursor, name = self.cursor, self.table.name
        for schema in self.schemas[self.copied : upto + 1]:
            for events in EVENTS:
                cursor.execute(f"SELECT COALESCE(MAX(rowid), 0) AS n FROM {schema}.{events}")
                count = int(cursor.fetchone()["n"])
                written = self.done  # events written before this table's (the cases' last)
                for first in range(1, count + 1, CHUNK):
                    cursor.execute(
                        f"INSERT INTO {name} (originator_id, originator_version, topic, state) "
                        "SELECT originator_id, originator_version, topic, state "
                        f"FROM {schema}.{events} WHERE rowid BETWEEN ? AND ? ORDER BY rowid",
                        (first, first + CHUNK - 1),
                    )
                    step = min(CHUNK, count - first + 1)
                    self.done += step
                    if self.progress:
                        self.progress(WRITING, step, self.total)
            self._viewing()
            if self.views and self.before is not None:
                # SQLite numbers each new row one past the last: the case event the spill
                # file numbers n is at the position before its first, + n
                _views_from(cursor, schema, self.before + written)
                self.viewed = True
        self.copied = max(self.copied, upto + 1)

    def _viewing(self) -> None:
        """Once the first events are in, whether the read models had seen every event
        before them (`views`), and the position before them (`before`). This transaction
        holds the write lock since its first event: no one else wrote in between, and the
        store numbered each event after the last."""
        if self.views and self.done and self.before is None:
            self.cursor.execute(f"SELECT COALESCE(MAX(rowid), 0) AS last FROM {self.table.name}")
            self.before = int(self.cursor.fetchone()["last"]) - self.done
            self.views = self.register.views.position_in(self.cursor) == self.before

    def append(self, records: Sequence[Record]) -> None:
        """Events already as the store's columns, after all written so far."""
        self.cursor.executemany(
            f"INSERT INTO {self.table.name} (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)",
            records,
        )
        self.done += len(records)
        if self.progress:
            self.progress(WRITING, len(records), self.total)
        self._viewing()

    def add_views(self, rows: Rows, after: int) -> None:
        """Read-model rows as a spill file holds them (spill.VIEWS), their events in: the
        event numbered n at the position of the `after`-th written + n."""
        if not (self.views and self.before is not None):
            return  # left to the catch-up after the import
        self.viewed = True
        at = self.before + after
        audit = [(at + row[0], *row[1:]) for row in rows["twinflow_audit"]]
        projection.insert(self.cursor, projection.as_is, {**rows, "twinflow_audit": audit})

    def finish(self, files: Sequence[Path], views: bool) -> int:
        """Copy what is left and commit; returns how many events were written. `views`:
        whether every spill file holds the read models' rows of all it built (a case the
        register held when the checks began leaves them to the catch-up after the import;
        one it came to hold while they ran means another writer got in)."""
        if self.cursor is None:
            self.begin(files)
            self.views = views
        elif self.viewed and not views:
            raise ConflictError(
                f"another writer recorded in {self.register.location.describe()} while this "
                "import ran; nothing was written: run it again"
            )
        self.views = self.views and views
        self.copy(len(files) - 1)
        if self.views and self.before is not None:
            self.register.views.set_position(self.cursor, self.before + self.done)
        self.stack.close()
        return self.done


class Direct:
    """Where the command's own run of cases is built (backfill.Checker), as another
    process's goes into a spill file: straight into the register instead, inside the
    write transaction, after all written so far (nothing written and read back twice)."""

    def __init__(self, writer: Writing) -> None:
        self.writer = writer
        self.after = writer.done  # events written before this run's
        self.built = 0  # events added: the last one's number in the run
        self._events: list[Record] = []

    def add_records(self, records: list[Record]) -> None:
        self._events.extend(records)
        self.built += len(records)
        if len(self._events) >= BATCH:
            self.seal()

    def add_view_rows(self, rows: Rows) -> None:
        self.seal()  # their events first
        self.writer.add_views(rows, self.after)

    def seal(self) -> None:
        if self._events:
            self.writer.append(self._events)
            self._events = []


def _views_from(cursor: Any, schema: str, before: int) -> None:
    """The read models' rows one spill file holds, copied into them (its events are in,
    its first case event at position `before` + 1)."""
    for name, columns in projection.TABLES:
        if name == "twinflow_audit":  # numbered as their events now are
            own = columns.removeprefix("position, ")
            cursor.execute(
                f"INSERT INTO main.{name} ({columns}) SELECT n + ?, {own} "
                f"FROM {schema}.{name} ORDER BY n",
                (before,),
            )
        else:
            cursor.execute(
                f"INSERT INTO main.{name} ({columns}) SELECT {columns} "
                f"FROM {schema}.{name} ORDER BY {projection.KEYS[name]}"
            )


def restore(
    register: Register,
    batches: Iterable[Sequence[Notification]],
    progress: Progress | None = None,
    total: int = 0,
) -> int:
    """Put the events back at their positions in one transaction, into an empty register."""
    table = Table(register)
    done = 0
    with table.transaction() as cursor:
        held = table.count(cursor)
        if held:
            raise RuleViolation(
                f"the register {register.location.describe()} already holds {held} event(s): "
                "restore only into a new, empty register (give another --db)"
            )
        for batch in batches:
            table.insert(cursor, batch, positions=True)
            done += len(batch)
            if progress:
                progress(RESTORING, len(batch), total)
        table.after_positions(cursor)
    return done


class Table:
    """The recorder's events table, for writes in batches inside one transaction."""

    def __init__(self, register: Register) -> None:
        self.register = register
        recorder: Any = register.events.recorder
        self.recorder = recorder
        self.kind = register.location.kind
        self.name = recorder.events_table_name
        if self.kind == "postgres":
            from psycopg.sql import Identifier

            self.qualified: Any = Identifier(recorder.datastore.schema, self.name)

    @contextmanager
    def transaction(self, attach: Mapping[str, Path] | None = None) -> Iterator[Any]:
        """A write transaction; on SQLite with the files of `attach` attached under their
        schema names, for its statements to read (before it begins, as SQLite requires)."""
        datastore = self.recorder.datastore
        opened = (
            datastore.transaction(commit=True) if attach is None else attached(datastore, attach)
        )
        try:
            with self.register.translated(), opened as cursor:
                if self.kind == "postgres":
                    # The lock eventsourcing takes for every save: positions are handed out
                    # and committed in the same order, so readers never skip an event.
                    for statement in self.recorder.lock_table_statements:
                        cursor.execute(statement)
                yield cursor
        except (IntegrityError, sqlite3.IntegrityError):
            raise ConflictError(
                f"another writer recorded on the same cases in {self.register.location.describe()} "
                "while this ran; nothing was written: run it again"
            ) from None
        except sqlite3.Error as error:  # raised by SQLite inside the transaction, untranslated
            raise StorageError(
                f"cannot write to the register {self.register.location.describe()}: {error}; "
                "nothing was written"
            ) from None
        except PersistenceError as error:
            raise StorageError(str(error)) from None

    def _among(self, originator_ids: Sequence[UUID]) -> tuple[str, list[Any]]:
        """`originator_id` among these, as each backend takes a list (ids as SQLite keeps
        them, hex; PostgreSQL's array)."""
        if self.kind == "sqlite":
            marks = ", ".join("?" * len(originator_ids))
            return f"originator_id IN ({marks})", [i.hex for i in originator_ids]
        return "originator_id = ANY(?)", [list(originator_ids)]

    def count(self, cursor: Any) -> int:
        cursor.execute(logread.sql(self.recorder, "SELECT COUNT(*) AS n FROM {table}"))
        return int(cursor.fetchone()["n"])

    def insert(self, cursor: Any, batch: Sequence[StoredEvent], *, positions: bool = False) -> None:
        if self.kind == "sqlite":
            columns = "rowid, originator_id, originator_version, topic, state"
            if not positions:
                columns = columns.removeprefix("rowid, ")
            marks = ", ".join("?" * len(columns.split(", ")))
            cursor.executemany(
                f"INSERT INTO {self.name} ({columns}) VALUES ({marks})",
                [_sqlite_row(e, positions) for e in batch],
            )
            return
        from psycopg.sql import SQL

        columns = "originator_id, originator_version, topic, state"
        if positions:
            columns += ", notification_id"
        marks = ", ".join(["%s"] * len(columns.split(", ")))
        cursor.executemany(
            SQL("INSERT INTO {} (" + columns + ") VALUES (" + marks + ")").format(self.qualified),
            [_postgres_row(e, positions) for e in batch],
        )

    def select(self, originator_ids: Sequence[UUID]) -> list[Notification]:
        """The events of some aggregates, in the global order, with their positions."""
        among, ids = self._among(originator_ids)
        statement = logread.sql(
            self.recorder,
            "SELECT {position} AS id, originator_id, originator_version, topic, state "
            f"FROM {{table}} WHERE {among} ORDER BY {{position}}",
        )
        datastore = self.recorder.datastore
        with self.register.translated(), datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, ids)
            return [
                Notification(
                    id=row["id"],
                    originator_id=UUID(str(row["originator_id"])),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in cursor.fetchall()
            ]

    def existing(self, originator_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates the register holds, in one indexed query per 500 ids:
        an import into a register that holds cases asks this for all its cases at once,
        instead of trying to load each one."""
        found: set[UUID] = set()
        datastore = self.recorder.datastore
        with self.register.translated(), datastore.transaction(commit=False) as cursor:
            for start in range(0, len(originator_ids), 500):
                among, ids = self._among(originator_ids[start : start + 500])
                cursor.execute(
                    logread.sql(
                        self.recorder,
                        f"SELECT originator_id FROM {{table}} WHERE {among} "
                        "AND originator_version = 1",
                    ),
                    ids,
                )
                found.update(UUID(str(row["originator_id"])) for row in cursor.fetchall())
        return found

    def after_positions(self, cursor: Any) -> None:
        """Let the store number the next event after the last restored one."""
        if self.kind == "postgres":
            from psycopg.sql import SQL, Literal

            sequence = SQL("pg_get_serial_sequence({}, 'notification_id')").format(
                Literal(f"{self.recorder.datastore.schema}.{self.name}")
            )
            cursor.execute(
                SQL(
                    "SELECT setval({sequence}, COALESCE(MAX(notification_id), 1), "
                    "MAX(notification_id) IS NOT NULL) FROM {table}"
                ).format(sequence=sequence, table=self.qualified)
            )


def _sqlite_row(event: StoredEvent, positions: bool) -> tuple[Any, ...]:
    ident = event.originator_id
    values = (ident.hex if isinstance(ident, UUID) else ident, *_rest(event))
    return (_position(event), *values) if positions else values


def _postgres_row(event: StoredEvent, positions: bool) -> tuple[Any, ...]:
    ident = event.originator_id
    values = (ident if isinstance(ident, UUID) else UUID(ident), *_rest(event))
    return (*values, _position(event)) if positions else values


def _rest(event: StoredEvent) -> tuple[Any, ...]:
    return event.originator_version, event.topic, event.state


def _position(event: StoredEvent) -> int:
    assert isinstance(event, Notification)
    return event.id
