"""A private, temporary SQLite file for an import: the checked rows, read back case by case in
valid-time order, and the events built from them, read back in order to be written. It keeps
an import of any size in bounded memory: no row's text stays in memory after it is read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from twinflow.projection import TABLES, Rows

BATCH = 1000
# The read models' rows of the import's new cases (backfill.py), as twinflow's tables hold
# them, but for the audit's position: the event's case id stands in for it until the event
# is written and numbered (bulk.append_spilled).
VIEWS = tuple(
    (table, "originator_id, " + columns.removeprefix("position, "))
    if table == "twinflow_audit"
    else (table, columns)
    for table, columns in TABLES
)


class Spilled(NamedTuple):
    """A row as read back: its line, whether its own checks failed, and what it says (JSON's
    types only: strings, None, numbers, lists and objects, as rowcheck builds it)."""

    line: int
    broken: bool
    row: dict[str, Any]


class Spill:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        # Nothing here outlives the import: durability would only cost time.
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute(
            "CREATE TABLE rows (case_index INTEGER, opening INTEGER, start INTEGER, "
            "line INTEGER, broken INTEGER, payload BLOB)"
        )
        self.db.execute(
            "CREATE TABLE events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB)"
        )
        for table, columns in VIEWS:
            self.db.execute(f"CREATE TABLE {table} ({columns})")
        # Whether the view tables hold every case's rows: then the import writes them and
        # the read models need no catch-up (bulk.append_spilled)
        self.views = False
        self.db.execute("BEGIN")
        self.cases: dict[str, int] = {}
        self.names: list[str] = []
        self._rows: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    def __enter__(self) -> Spill:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.db.close()

    def case_index(self, slug: str) -> int:
        index = self.cases.get(slug)
        if index is None:
            index = self.cases[slug] = len(self.names)
            self.names.append(slug)
        return index

    def add_row(
        self, slug: str, *, opening: bool, start: int, line: int, broken: bool, row: dict[str, Any]
    ) -> None:
        self._rows.append(
            (self.case_index(slug), int(opening), start, line, int(broken), orjson.dumps(row))
        )
        if len(self._rows) >= BATCH:
            self._flush_rows()

    def _flush_rows(self) -> None:
        self.db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def by_case(self) -> Iterator[tuple[str, list[Spilled]]]:
        """Each case's rows: its opening first, then by date (first day), then by line."""
        self._flush_rows()
        cursor = self.db.execute(
            "SELECT case_index, line, broken, payload FROM rows "
            "ORDER BY case_index, opening DESC, start, line"
        )
        current, rows = -1, list[Spilled]()
        while batch := cursor.fetchmany(BATCH):
            for index, line, broken, payload in batch:
                if index != current:
                    if rows:
                        yield self.names[current], rows
                    current, rows = index, []
                # orjson, not pickle: under half the cost, and a row holds JSON's types only
                rows.append(Spilled(line, bool(broken), orjson.loads(payload)))
        if rows:
            yield self.names[current], rows

    def add_events(self, events: list[StoredEvent]) -> None:
        self._events.extend(
            (
                e.originator_id.hex if isinstance(e.originator_id, UUID) else e.originator_id,
                e.originator_version,
                e.topic,
                e.state,
            )
            for e in events
        )
        if len(self._events) >= BATCH:
            self._flush_events()

    def add_records(self, records: list[tuple[str, int, str, bytes]]) -> None:
        """Events already as the store's columns (eventbytes.Record)."""
        self._events.extend(records)
        if len(self._events) >= BATCH:
            self._flush_events()

    def add_view_rows(self, rows: Rows) -> None:
        for table, columns in VIEWS:
            if rows[table]:
                marks = ", ".join("?" * len(columns.split(",")))
                self.db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])

    def _flush_events(self) -> None:
        self.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", self._events)
        self._events.clear()

    def seal(self) -> int:
        """Commit the built events for another connection to read (bulk.append_spilled),
        and tell how many there are: rowids 1 to that number, in the order built."""
        self._flush_events()
        self.db.execute("COMMIT")
        (last,) = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()
        self.db.execute("BEGIN")
        return int(last)

    def events(self) -> Iterator[list[StoredEvent]]:
        """The built events in the order they were added, in batches; ids as hex strings,
        which SQLite stores as they are (no UUID objects to build and take apart again)."""
        self._flush_events()
        cursor = self.db.execute(
            "SELECT originator_id, originator_version, topic, state FROM events ORDER BY rowid"
        )
        while batch := cursor.fetchmany(BATCH):
            yield [
                StoredEvent(ident, version, topic, state) for ident, version, topic, state in batch
            ]
