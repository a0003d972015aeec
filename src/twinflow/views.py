"""The read side: tables for listing cases and auditing who recorded what, kept up to date by
pulling the global event order from the last tracked position, in batches, and rebuildable
from the log at any time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from twinflow import steps as step_rows
from twinflow import timeline
from twinflow.dates import PartialDate
from twinflow.domain import Case, case_id, replay
from twinflow.following import Followed

if TYPE_CHECKING:
    from twinflow.application import Register

BATCH = 1000
VIEW = "cases"

TABLES = (
    "CREATE TABLE IF NOT EXISTS twinflow_position (name TEXT PRIMARY KEY, position BIGINT)",
    "CREATE TABLE IF NOT EXISTS twinflow_cases (slug TEXT PRIMARY KEY, title TEXT, "
    "workflow TEXT, version INTEGER, parties TEXT, state TEXT, since TEXT, settled_on TEXT, "
    "steps TEXT, last_seq INTEGER)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_state ON twinflow_cases (state, settled_on)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_workflow ON twinflow_cases (workflow)",
    "CREATE INDEX IF NOT EXISTS twinflow_cases_settled ON twinflow_cases (settled_on)",
    "CREATE TABLE IF NOT EXISTS twinflow_parties (party TEXT, slug TEXT, "
    "PRIMARY KEY (party, slug))",
    "CREATE TABLE IF NOT EXISTS twinflow_audit (position BIGINT PRIMARY KEY, slug TEXT, "
    "seq INTEGER, kind TEXT, detail TEXT, actor TEXT, recorded_at TEXT, on_behalf_of TEXT)",
    "CREATE INDEX IF NOT EXISTS twinflow_audit_actor ON twinflow_audit (actor, recorded_at)",
    "CREATE INDEX IF NOT EXISTS twinflow_audit_slug ON twinflow_audit (slug, recorded_at)",
    *step_rows.TABLES,
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
            for statement in TABLES:
                cursor.execute(statement)

    # ------------------------------------------------------------------ updating

    def position(self) -> int:
        with self.cursor(commit=False) as cursor:
            cursor.execute(
                self.sql("SELECT position FROM twinflow_position WHERE name = ?"), (VIEW,)
            )
            row = cursor.fetchone()
        return int(row["position"]) if row else 0

    def pending(self) -> int:
        """How many events the views have not seen yet."""
        return max(0, (self.register.events.recorder.max_notification_id() or 0) - self.position())

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event recorded since the last tracked position; returns how many."""
        recorder = self.register.events.recorder
        mapper = self.register.events.mapper
        start, done = self.position(), 0
        last = recorder.max_notification_id() or 0
        followed = Followed(self._load)
        while start < last:
            batch = recorder.select_notifications(
                start=start, limit=BATCH, stop=last, inclusive_of_start=False
            )
            if not batch:
                break
            events = [(n.id, mapper.to_domain_event(n)) for n in batch]
            cases = [(position, e) for position, e in events if isinstance(e, Case.Event)]
            paths: dict[str, list[timeline.Step]] = {}
            # Each changed case once per batch, however many of its events the batch holds.
            changed = followed.advance(e for _, e in cases)
            rows = {cid: self._case_row(case, paths) for cid, case in changed.items()}
            audit = [
                _audit_row(position, rows[e.originator_id]["slug"], e) for position, e in cases
            ]
            with self.cursor(commit=True) as cursor:
                self._write(cursor, list(rows.values()), audit, batch[-1].id)
                self._write_steps(cursor, rows, paths)
            start, done = batch[-1].id, done + len(batch)
            if progress:
                progress(len(batch))
        return done

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        with self.cursor(commit=True) as cursor:
            for statement in CLEAR:
                cursor.execute(statement)
        return self.catch_up(progress)

    def _load(self, case_id: UUID, version: int) -> Case:
        case: Case = self.register.events.repository.get(
            case_id, version=version, projector_func=replay
        )
        return case

    def _case_row(
        self, case: Case, paths: dict[str, list[timeline.Step]] | None = None
    ) -> dict[str, Any]:
        steps = timeline.path(timeline.in_force(case.entries), self.register.workflow_of(case))
        if paths is not None:
            paths[case.slug] = steps
        since = next((s for s in reversed(steps) if s.changes_state), None)
        return {
            "slug": case.slug,
            "title": case.title,
            "workflow": case.workflow,
            "version": case.workflow_version,
            "parties": json.dumps(case.parties),
            "state": steps[-1].after,
            "since": str(since.item.date) if since else None,
            "settled_on": max(s.item.date.latest for s in steps).isoformat(),
            "steps": json.dumps(
                [
                    [
                        s.item.date.earliest.isoformat(),
                        s.item.date.latest.isoformat(),
                        s.after,
                        str(s.item.date),
                        s.changes_state,
                    ]
                    for s in steps
                ]
            ),
            "last_seq": case.version,
        }

    def _write_steps(
        self, cursor: Any, rows: Mapping[UUID, dict[str, Any]], paths: dict[str, Any]
    ) -> None:
        """Each changed case's steps, unless a concurrent catch-up already wrote a later
        version of the case (its row in twinflow_cases then says so)."""
        ours = {row["slug"]: row["last_seq"] for row in rows.values()}
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
                    "SELECT title, workflow, version, parties FROM twinflow_cases WHERE slug = ?"
                ),
                (slug,),
            )
            row = cursor.fetchone()
            found = step_rows.status_on(cursor, self.sql, slug, date) if row else None
        if row is None or found is None:
            return None
        case = {k: row[k] for k in ("title", "workflow", "version")}
        case["parties"] = json.loads(row["parties"])
        return case, *found

    def _write(
        self, cursor: Any, rows: list[dict[str, Any]], audit: list[tuple[Any, ...]], position: int
    ) -> None:
        # executemany: one statement per table and batch rather than per row
        cursor.executemany(
            self.sql(
                "INSERT INTO twinflow_cases (slug, title, workflow, version, parties, state, "
                "since, settled_on, steps, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (slug) DO UPDATE SET title = excluded.title, "
                "workflow = excluded.workflow, version = excluded.version, "
                "parties = excluded.parties, state = excluded.state, since = excluded.since, "
                "settled_on = excluded.settled_on, steps = excluded.steps, "
                "last_seq = excluded.last_seq "
                "WHERE twinflow_cases.last_seq <= excluded.last_seq"
            ),
            [tuple(row.values()) for row in rows],
        )
        cursor.executemany(
            self.sql(
                "INSERT INTO twinflow_parties (party, slug) VALUES (?, ?) ON CONFLICT DO NOTHING"
            ),
            [(party, row["slug"]) for row in rows for party in json.loads(row["parties"])],
        )
        cursor.executemany(
            self.sql(
                "INSERT INTO twinflow_audit (position, slug, seq, kind, detail, actor, "
                "recorded_at, on_behalf_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING"
            ),
            audit,
        )
        cursor.execute(
            self.sql(
                "INSERT INTO twinflow_position (name, position) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET position = excluded.position "
                "WHERE twinflow_position.position < excluded.position"
            ),
            (VIEW, position),
        )

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
        columns = (
            "SELECT c.slug, c.title, c.workflow, c.version, c.parties, c.state, c.since, "
            "c.settled_on, {steps} AS steps FROM twinflow_cases c"
        )
        statement = columns.format(steps="c.steps")
        if state:
            # A settled case's stored state is its state on any later date; the rest are
            # answered from their steps below. Two parts rather than an OR, each read from
            # an index instead of scanning every case, sorted here (an ORDER BY made SQLite
            # scan the cases in slug order again).
            day = as_of.earliest.isoformat()
            settled = " AND ".join([*where, "c.state = ? AND c.settled_on <= ?"])
            unsettled = " AND ".join([*where, "c.settled_on > ?"])
            statement = (
                f"{columns.format(steps='NULL')} WHERE {settled} "
                f"UNION ALL {statement} WHERE {unsettled}"
            )
            params = [*params, state, day, *params, day]
        else:
            if where:
                statement += " WHERE " + " AND ".join(where)
            statement += " ORDER BY c.slug"
        with self.cursor(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(params))
            fetched = cursor.fetchall()
        if state:
            fetched.sort(key=lambda r: r["slug"])
        return [
            row
            for row in map(lambda r: _listing(r, as_of), fetched)
            if not state or state in row["possible"]
        ]

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


def _listing(row: Mapping[str, Any], as_of: PartialDate) -> dict[str, Any]:
    possible: list[str | None]
    if row["settled_on"] <= as_of.earliest.isoformat():
        state, certain, since, possible = row["state"], True, row["since"], [row["state"]]
    else:
        state, certain, since, possible = _state_from_steps(json.loads(row["steps"]), as_of)
    return {
        "case": row["slug"],
        "title": row["title"],
        "workflow": row["workflow"],
        "version": row["version"],
        "state": state,
        "certain": certain,
        "since": since,
        "possible": possible,
        "parties": json.loads(row["parties"]),
    }


def _state_from_steps(
    raw: Iterable[list[Any]], as_of: PartialDate
) -> tuple[str | None, bool, str | None, list[str | None]]:
    steps = [
        _light_step(earliest, latest, after, text, changed)
        for earliest, latest, after, text, changed in raw
    ]
    found = timeline.status_on(steps, as_of)
    since = str(found.since.item.date) if found.since else None
    return found.state, found.certain, since, list(found.possible)


def _light_step(earliest: str, latest: str, after: str, text: str, changed: bool) -> timeline.Step:
    date = PartialDate(
        dt.date.fromisoformat(earliest),
        dt.date.fromisoformat(earliest),
        dt.date.fromisoformat(latest),
        text,
    )
    item = timeline.Item(0, "decision", dt.datetime.min, "", {}, date)
    return timeline.Step(item, None if changed else after, after)


def _audit_row(position: int, slug: str, event: Case.Event) -> tuple[Any, ...]:
    fields: dict[str, Any] = vars(event)
    if "decision" in fields:
        detail = fields["decision"].get("trigger") or "open"
        if event.KIND == "opened":
            detail = f"open {fields['slug']} ({fields['workflow']} v{fields['workflow_version']})"
    elif "note" in fields:
        detail = f"note {fields['note'].get('kind')}"
    elif event.KIND == "migrated":
        detail = f"migrate v{fields['from_version']} -> v{fields['to_version']}: {fields['reason']}"
    else:
        changed = ", ".join(fields.get("changes") or {})
        detail = f"{event.KIND} #{fields.get('target')}{f' ({changed})' if changed else ''}"
        detail += f": {fields.get('why')}"
    return (
        position,
        slug,
        event.originator_version,
        event.KIND,
        detail,
        event.actor,
        event.timestamp.isoformat(),
        fields.get("on_behalf_of"),
    )
