"""A private, temporary SQLite file for an import: the checked rows, read back case by case in
valid-time order (by this process or, for a run of the cases, another: backfill.py), and the
events built from them, read back in order to be written. It keeps an import of any size in
bounded memory: no row's text stays in memory after it is read."""

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
# The tables of built events, in the order they are written: the workflow versions first.
EVENTS = ("workflows", "events")
# The read models' rows of the import's new cases (backfill.py), as twinflow's tables hold
# them, but for the audit's position: the event's number among the spill file's events (its
# rowid in `events`) stands in for it until the events are written and numbered after the
# log's last (bulk.Writing).
VIEWS = tuple(
    (table, "n, " + columns.removeprefix("position, "))
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
    """The spill file of an import, or (`reading`) one another process made, to read, or
    (`made`) one made for this process to fill (`make`)."""

    def __init__(self, path: Path, *, reading: bool = False, made: bool = False) -> None:
        self.path = path
        self.cases: dict[str, int] = {}
        self.names: list[str] = []
        self._rows: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []
        self.built = 0  # events added (add_records): the last one's number
        self.writing = not reading
        if reading:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            found = self.db.execute("SELECT slug FROM cases ORDER BY case_index")
            self.names = [slug for (slug,) in found]
            return
        self.db = sqlite3.connect(path, isolation_level=None)
        # Nothing here outlives the import: durability would only cost time.
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        if made:
            self.db.execute("BEGIN")
            return
        self.db.execute(
            "CREATE TABLE rows (case_index INTEGER, opening INTEGER, start INTEGER, "
            "line INTEGER, broken INTEGER, payload BLOB, workflow TEXT)"
        )
        self.db.execute("CREATE TABLE cases (case_index INTEGER PRIMARY KEY, slug TEXT)")
        for table in EVENTS:
            self.db.execute(
                f"CREATE TABLE {table} (originator_id TEXT, originator_version INTEGER, "
                "topic TEXT, state BLOB)"
            )
        for table, columns in VIEWS:
            self.db.execute(f"CREATE TABLE {table} ({columns})")
        self.db.execute("BEGIN")

    @classmethod
    def make(cls, path: Path) -> None:
        """A new spill file with its tables and nothing in them, for a process to fill
        (`made`), which another may attach before then (bulk.Writing)."""
        cls(path).db.close()

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
        workflow = row.get("workflow") if opening and not broken else None
        self._rows.append(
            (
                self.case_index(slug),
                int(opening),
                start,
                line,
                int(broken),
                orjson.dumps(row),
                workflow,
            )
        )
        if len(self._rows) >= BATCH:
            self._flush_rows()

    def _flush_rows(self) -> None:
        self.db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def merge(self, path: Path) -> None:
        """Add the rows another process read into the spill file at `path`, from a later
        span of the same file: its new cases keep their order, after the cases here."""
        self._flush_rows()
        self.db.execute("COMMIT")
        self.db.execute("ATTACH DATABASE ? AS part", (str(path),))
        self.db.execute("BEGIN")
        found = self.db.execute("SELECT slug FROM part.cases ORDER BY case_index")
        indexes = [(number, self.case_index(slug)) for number, (slug,) in enumerate(found)]
        self.db.execute("CREATE TEMP TABLE merged (part INTEGER PRIMARY KEY, here INTEGER)")
        self.db.executemany("INSERT INTO temp.merged VALUES (?, ?)", indexes)
        self.db.execute(
            "INSERT INTO rows SELECT m.here, r.opening, r.start, r.line, r.broken, r.payload, "
            "r.workflow "
            "FROM part.rows r JOIN temp.merged m ON m.part = r.case_index ORDER BY r.rowid"
        )
        self.db.execute("DROP TABLE temp.merged")
        self.db.execute("COMMIT")
        self.db.execute("DETACH DATABASE part")
        self.db.execute("BEGIN")

    def clear(self) -> None:
        """Forget every row read, to read the file again."""
        self._rows.clear()
        self.db.execute("DELETE FROM rows")
        self.cases.clear()
        self.names.clear()

    def opened_workflows(self) -> list[str]:
        """The workflows the file's opening rows name, in the order of their cases."""
        self._flush_rows()
        found = self.db.execute(
            "SELECT workflow, MIN(case_index) AS first FROM rows WHERE workflow IS NOT NULL "
            "GROUP BY workflow ORDER BY first"
        )
        return [name for name, _ in found if isinstance(name, str)]

    def share(self) -> None:
        """Commit the rows and the cases' names, for other processes to read (`reading`)."""
        self._flush_rows()
        self.db.executemany("INSERT INTO cases VALUES (?, ?)", enumerate(self.names))
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def cuts(self, shares: list[float]) -> list[tuple[int, int]]:
        """The cases cut into runs of consecutive cases, one for each of `shares`, each
        with about that share of the rows: [low, high) ranges of case indexes, in order
        (an empty one where a share is too small for a case). For more than one, the rows
        get an index that gives each run its rows in order (`by_case`) without every
        process sorting the whole file's; counting them is its first use."""
        if len(shares) < 2:
            return [(0, len(self.names))]
        self._flush_rows()
        self.db.execute(
            "CREATE INDEX IF NOT EXISTS rows_order ON rows (case_index, opening DESC, start, line)"
        )
        counts = self.db.execute(
            "SELECT case_index, COUNT(*) FROM rows GROUP BY case_index ORDER BY case_index"
        ).fetchall()
        total, whole = sum(n for _, n in counts), sum(shares)
        ranges: list[tuple[int, int]] = []
        seen, low, index, reach = 0, 0, 0, 0.0
        for share in shares[:-1]:
            reach += share / whole
            while index < len(counts) and (seen + counts[index][1] / 2) <= total * reach:
                seen += counts[index][1]
                index += 1
            high = counts[index - 1][0] + 1 if index else 0
            ranges.append((low, max(low, high)))
            low = max(low, high)
        ranges.append((low, len(self.names)))
        return ranges

    def by_case(self, low: int = 0, high: int | None = None) -> Iterator[tuple[str, list[Spilled]]]:
        """Each case's rows (of the cases indexed from low up to high): its opening first,
        then by date (first day), then by line."""
        if self.writing:
            self._flush_rows()
        cursor = self.db.execute(
            "SELECT case_index, line, broken, payload FROM rows "
            "WHERE case_index >= ? AND case_index < ? "
            "ORDER BY case_index, opening DESC, start, line",
            (low, len(self.names) if high is None else high),
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

    def add_workflows(self, events: list[StoredEvent]) -> None:
        """The events that store the workflow versions the import's cases are the first to
        use: written before the cases' events."""
        self.db.executemany(
            "INSERT INTO workflows VALUES (?, ?, ?, ?)",
            [
                (
                    e.originator_id.hex if isinstance(e.originator_id, UUID) else e.originator_id,
                    e.originator_version,
                    e.topic,
                    e.state,
                )
                for e in events
            ],
        )

    def add_records(self, records: list[tuple[str, int, str, bytes]]) -> None:
        """Events already as the store's columns (eventbytes.Record), numbered on from
        `built` (their rowids in `events`)."""
        self._events.extend(records)
        self.built += len(records)
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

    def seal(self) -> None:
        """Commit what was built for another connection or process to read (bulk.Writing:
        rowids from 1, in the order built)."""
        self._flush_events()
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def events(self) -> Iterator[list[StoredEvent]]:
        """The built events in the order they are written, in batches; ids as hex strings,
        which SQLite stores as they are (no UUID objects to build and take apart again)."""
        if self.writing:
            self._flush_events()
        for table in EVENTS:
            cursor = self.db.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {table} "
                "ORDER BY rowid"
            )
            while batch := cursor.fetchmany(BATCH):
                yield [
                    StoredEvent(ident, version, topic, state)
                    for ident, version, topic, state in batch
                ]
