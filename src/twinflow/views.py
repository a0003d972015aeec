"""The read side: tables for listing cases and auditing who recorded what, kept up to date by
pulling the global event order from the last tracked position, in batches, and rebuildable
from the log at any time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from uuid import UUID

from twinflow import logread, projection, timeline
from twinflow import steps as step_rows
from twinflow.dates import PartialDate
from twinflow.domain import Case, case_id, replay
from twinflow.following import Followed

if TYPE_CHECKING:
    from twinflow.application import Register

BATCH = 1000
VIEW = "cases"

# The SQLite layout. The audit is keyed by its rowid (INTEGER PRIMARY KEY) and the tables
# with composite keys are stored WITHOUT ROWID: one B-tree each, not a table beside the index
# of its key (bench/RESULTS.md, fix 23). PostgreSQL's layout follows from it (POSTGRES_TABLES).
TABLES = (
    "CREATE TABLE IF NOT EXISTS twinflow_position (name TEXT PRIMARY KEY, position BIGINT)",
    "CREATE TABLE IF NOT EXISTS twinflow_cases (slug TEXT PRIMARY KEY, title TEXT, "
    "workflow TEXT, version INTEGER, parties TEXT, state TEXT, since TEXT, settled_on TEXT, "
    "steps TEXT, last_seq INTEGER)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_state ON twinflow_cases (state, settled_on)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_workflow ON twinflow_cases (workflow)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_settled ON twinflow_cases (settled_on)",
    "CREATE TABLE IF NOT EXISTS twinflow_parties (party TEXT, slug TEXT, "
    "PRIMARY KEY (party, slug)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS twinflow_audit (position INTEGER PRIMARY KEY, slug TEXT, "
    "seq INTEGER, kind TEXT, detail TEXT, actor TEXT, recorded_at TEXT, on_behalf_of TEXT)",
    # A case's audit in log order, as read, straight from this index (it holds the rowid):
    # a third of the size it had with recorded_at in it (bench/RESULTS.md, fix 40).
    "CREATE INDEX IF NOT EXISTS twinflow_audit_slug ON twinflow_audit (slug)",
    *step_rows.TABLES,
)
POSTGRES_TABLES = tuple(
    statement.replace(" WITHOUT ROWID", "").replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY")
    for statement in TABLES
)
CLEAR = (
    "DELETE FROM twinflow_cases",
    "DELETE FROM twinflow_parties",
    "DELETE FROM twinflow_audit",
    "DELETE FROM twinflow_position",
    *step_rows.CLEAR,
)


class Views:
    """The read models of one register."""

    def __init__(self, register: Register) -> None:
        self.register = register
        self.kind = register.location.kind

    def sql(self, statement: str) -> str:
        return statement if self.kind == "sqlite" else statement.replace("?", "%s")

    @contextmanager
    def cursor(self, *, commit: bool) -> Iterator[Any]:
        datastore = self.register.events.recorder.datastore  # type: ignore[attr-defined]
        with self.register.translated(), datastore.transaction(commit=commit) as cursor:
            yield cursor

    def create(self) -> None:
        with self.cursor(commit=True) as cursor:
            for statement in self.create_statements():
                cursor.execute(statement)

    # ------------------------------------------------------------------ updating

    def position(self) -> int:
        """The position of the last event the read models have seen."""
        with self.cursor(commit=False) as cursor:
            return self.position_in(cursor)

    def position_in(self, cursor: Any) -> int:
        cursor.execute(self.sql("SELECT position FROM twinflow_position WHERE name = ?"), (VIEW,))
        row = cursor.fetchone()
        return int(row["position"]) if row else 0

    def pending(self) -> int:
        """How many events the next catch-up reads: those the views have not seen yet, or
        the whole log where it rebuilds them instead (`catch_up`)."""
        last = self.register.events.recorder.max_notification_id() or 0
        start = self.position()
        return last if _rebuilds(start, last) else max(0, last - start)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event recorded since the last tracked position, in log order, a batch
        per transaction; returns how many. Where half the log or more is new to the read
        models (a new register after an import or a restore, a large import into a small
        register), they are rebuilt instead: that reads each case once, where catching up
        replays each case a batch touches (bench/RESULTS.md, fix 28)."""
        recorder = self.register.events.recorder
        start, done = self.position(), 0
        last = recorder.max_notification_id() or 0
        if _rebuilds(start, last):
            return projection.rebuild(self.register, progress)
        decode = logread.Decoder(self.register.events.mapper)
        followed = Followed(self._load)
        for batch in logread.batches(recorder, after=start, upto=last, size=BATCH):
            cases = [(r.id, decode(r)) for r in batch if r.topic.startswith(projection.CASES)]
            paths: dict[str, list[timeline.Step]] = {}
            # Each changed case once per batch, however many of its events the batch holds.
            changed = followed.advance(e for _, e in cases)
            rows = {}
            for cid, case in changed.items():
                paths[case.slug] = projection.path_of(self.register, case)
                rows[cid] = projection.case_row(projection.Head.of(case), paths[case.slug])
            audit = [
                projection.audit_row(position, rows[e.originator_id][0], e) for position, e in cases
            ]
            with self.cursor(commit=True) as cursor:
                self._write(cursor, list(rows.values()), audit, batch[-1].id)
                self._write_steps(cursor, rows, paths)
            done += len(batch)
            if progress:
                progress(len(batch))
        return done

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty every read model and fill it again from the log (projection.py)."""
        return projection.rebuild(self.register, progress)

    def clear_statements(self) -> tuple[str, ...]:
        return CLEAR

    def create_statements(self) -> tuple[str, ...]:
        return TABLES if self.kind == "sqlite" else POSTGRES_TABLES

    def set_position(self, cursor: Any, position: int) -> None:
        cursor.execute(
            self.sql(
                "INSERT INTO twinflow_position (name, position) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET position = excluded.position "
                "WHERE twinflow_position.position < excluded.position"
            ),
            (VIEW, position),
        )

    def _load(self, case_id: UUID, version: int) -> Case:
        case: Case = self.register.events.repository.get(
            case_id, version=version, projector_func=replay
        )
        return case

    def _write_steps(
        self, cursor: Any, rows: Mapping[UUID, tuple[Any, ...]], paths: dict[str, Any]
    ) -> None:
        """Each changed case's steps, unless a concurrent catch-up already wrote a later
        version of the case (its row in twinflow_cases then says so)."""
        ours = {row[0]: row[-1] for row in rows.values()}  # slug: last_seq
        later = set()
        slugs = list(ours)
        for chunk in range(0, len(slugs), step_rows.CHUNK):
            some = slugs[chunk : chunk + step_rows.CHUNK]
            cursor.execute(
                self.sql(
                    "SELECT slug, last_seq FROM twinflow_cases "
                    f"WHERE slug IN ({', '.join('?' * len(some))})"
                ),
                some,
            )
            later |= {r["slug"] for r in cursor.fetchall() if r["last_seq"] > ours[r["slug"]]}
        step_rows.write(cursor, self.sql, {s: p for s, p in paths.items() if s not in later})

    def status_on(
        self, slug: str, date: PartialDate
    ) -> tuple[dict[str, Any], timeline.Status, PartialDate] | None:
        """A case's title, workflow and parties, its state on a date and its opening date,
        from the read models (None where they do not hold the case)."""
        with self.cursor(commit=False) as cursor:
            cursor.execute(
                self.sql(
                    "SELECT title, workflow, version, parties, "
                    f"{step_rows.stored_steps()} FROM twinflow_cases WHERE slug = ?"
                ),
                (slug,),
            )
            row = cursor.fetchone()
            found = step_rows.status_on(cursor, self.sql, slug, row["steps"], date) if row else None
        if row is None or found is None:
            return None
        case = {k: row[k] for k in ("title", "workflow", "version")}
        case["parties"] = json.loads(row["parties"])
        return case, *found

    def _write(
        self, cursor: Any, rows: list[tuple[Any, ...]], audit: list[tuple[Any, ...]], position: int
    ) -> None:
        # executemany: one statement per table and batch rather than per row
        cursor.executemany(
            self.sql(
                f"INSERT INTO twinflow_cases ({projection.CASE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (slug) DO UPDATE SET title = excluded.title, "
                "workflow = excluded.workflow, version = excluded.version, "
                "parties = excluded.parties, state = excluded.state, since = excluded.since, "
                "settled_on = excluded.settled_on, steps = excluded.steps, "
                "last_seq = excluded.last_seq "
                "WHERE twinflow_cases.last_seq <= excluded.last_seq"
            ),
            rows,
        )
        cursor.executemany(
            self.sql(
                "INSERT INTO twinflow_parties (party, slug) VALUES (?, ?) ON CONFLICT DO NOTHING"
            ),
            [(party, row[0]) for row in rows for party in json.loads(row[4])],
        )
        cursor.executemany(
            self.sql(
                f"INSERT INTO twinflow_audit ({projection.AUDIT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            audit,
        )
        self.set_position(cursor, position)

    # ------------------------------------------------------------------ querying

    def cases(
        self,
        *,
        workflow: str | None = None,
        state: str | None = None,
        party: str | None = None,
        as_of: PartialDate,
    ) -> list[dict[str, Any]]:
        """Cases with their state on `as_of`; those whose state may be `state` when asked."""
        where, params = [], []
        if workflow:
            where.append("c.workflow = ?")
            params.append(workflow)
        if party:
            where.append("c.slug IN (SELECT slug FROM twinflow_parties WHERE party = ?)")
            params.append(party)
        # A settled case's stored state is its state on any later date: its steps, the
        # largest column, are read only for the cases not yet settled on the day asked about
        # (steps NULL marks a case settled by then).
        day = as_of.earliest.isoformat()
        columns = (
            "SELECT c.slug, c.title, c.workflow, c.version, c.parties, c.state, c.since, "
            "{steps} AS steps FROM twinflow_cases c"
        )
        statement = columns.format(steps="CASE WHEN c.settled_on > ? THEN c.steps END")
        if state:
            # The rest are answered from their steps below. Two parts rather than an OR,
            # each read from an index instead of scanning every case, sorted here (an ORDER
            # BY made SQLite scan the cases in slug order again).
            settled = " AND ".join([*where, "c.state = ? AND c.settled_on <= ?"])
            unsettled = " AND ".join([*where, "c.settled_on > ?"])
            statement = (
                f"{columns.format(steps='NULL')} WHERE {settled} "
                f"UNION ALL {columns.format(steps='c.steps')} WHERE {unsettled}"
            )
            params = [*params, state, day, *params, day]
        else:
            if where:
                statement += " WHERE " + " AND ".join(where)
            statement += " ORDER BY c.slug"
            params = [day, *params]
        with self.cursor(commit=False) as cursor:
            self._tuples(cursor)
            cursor.execute(self.sql(statement), tuple(params))
            fetched: list[tuple[Any, ...]] = cursor.fetchall()
        if state:
            fetched.sort(key=itemgetter(0))  # by slug
        return _listings(fetched, as_of, state)

    def _tuples(self, cursor: Any) -> None:
        """Rows as plain tuples rather than the datastore's mappings (sqlite3.Row, psycopg's
        dict rows): a listing reads thousands of rows, each field once, by position."""
        if self.kind == "sqlite":  # eventsourcing's cursor wraps sqlite3's
            cursor.sqlite_cursor.row_factory = None
        else:
            from psycopg.rows import tuple_row

            cursor.row_factory = tuple_row

    def known_cases(self) -> dict[UUID, str]:
        """The slug of every case the read model has seen, by case id: names a case in
        `verify` even where its stored opening no longer decodes."""
        with self.cursor(commit=False) as cursor:
            cursor.execute("SELECT slug FROM twinflow_cases")
            return {case_id(row["slug"]): row["slug"] for row in cursor.fetchall()}

    def audit(
        self,
        *,
        actor: str | None = None,
        case: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        for clause, value in (
            ("(actor = ? OR on_behalf_of = ?)", actor),
            ("slug = ?", case),
            ("recorded_at >= ?", since and since.isoformat()),
            ("recorded_at <= ?", until and until.isoformat()),
        ):
            if value:
                where.append(clause)
                params += [value] * clause.count("?")
        statement = (
            "SELECT position, slug, seq, kind, detail, actor, on_behalf_of, recorded_at "
            "FROM twinflow_audit"
        )
        if where:
            statement += " WHERE " + " AND ".join(where)
        statement += " ORDER BY position"
        with self.cursor(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(params))
            return [
                {
                    "position": r["position"],
                    "recorded_at": r["recorded_at"],
                    "actor": r["actor"],
                    "on_behalf_of": r["on_behalf_of"],
                    "case": r["slug"],
                    "seq": r["seq"],
                    "kind": r["kind"],
                    "detail": r["detail"],
                }
                for r in cursor.fetchall()
            ]


def _rebuilds(start: int, last: int) -> bool:
    """Whether a catch-up from position `start` to `last` rebuilds the read models."""
    return last >= projection.CHUNK and (last - start) * 2 >= last


def _listings(
    fetched: list[tuple[Any, ...]], as_of: PartialDate, state: str | None
) -> list[dict[str, Any]]:
    """The listed rows of the fetched cases, those that may be in `state` where given.

    Built in one loop over plain tuples, the parties of every case decoded by a single
    json.loads of them all (each stored value is one JSON array, projection._json's):
    per-row calls and mappings cost more than the query for thousands of cases."""
    parties = json.loads(f"[{','.join([row[4] for row in fetched])}]")
    listed = []
    for (slug, title, workflow, version, _, stored, since, steps), names in zip(
        fetched, parties, strict=True
    ):
        if steps is None:  # settled by the date asked about: the stored state holds
            found, certain, possible = stored, True, [stored]
        else:
            found, certain, since, possible = _state_from_steps(json.loads(steps), as_of)
        if state and state not in possible:
            continue
        listed.append(
            {
                "case": slug,
                "title": title,
                "workflow": workflow,
                "version": version,
                "state": found,
                "certain": certain,
                "since": since,
                "possible": possible,
                "parties": names,
            }
        )
    return listed


def _state_from_steps(
    raw: Iterable[list[Any]], as_of: PartialDate
) -> tuple[str | None, bool, str | None, list[str | None]]:
    steps = [step_rows.stored_step(entry) for entry in raw]
    found = timeline.status_on(steps, as_of)
    since = str(found.since.item.date) if found.since else None
    return found.state, found.certain, since, list(found.possible)
