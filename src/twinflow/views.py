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

from twinflow import timeline
from twinflow.dates import PartialDate
from twinflow.domain import Case

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
    "CREATE TABLE IF NOT EXISTS twinflow_parties (party TEXT, slug TEXT, "
    "PRIMARY KEY (party, slug))",
    "CREATE TABLE IF NOT EXISTS twinflow_audit (position BIGINT PRIMARY KEY, slug TEXT, "
    "seq INTEGER, kind TEXT, detail TEXT, actor TEXT, recorded_at TEXT)",
    "CREATE INDEX IF NOT EXISTS twinflow_audit_actor ON twinflow_audit (actor, recorded_at)",
    "CREATE INDEX IF NOT EXISTS twinflow_audit_slug ON twinflow_audit (slug, recorded_at)",
)
CLEAR = (
    "DELETE FROM twinflow_cases",
    "DELETE FROM twinflow_parties",
    "DELETE FROM twinflow_audit",
    "DELETE FROM twinflow_position",
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
        while start < last:
            batch = recorder.select_notifications(
                start=start, limit=BATCH, stop=last, inclusive_of_start=False
            )
            if not batch:
                break
            events = [(n.id, mapper.to_domain_event(n)) for n in batch]
            cases = [(position, e) for position, e in events if isinstance(e, Case.Event)]
            rows = {e.originator_id: self._case_row(e.originator_id) for _, e in cases}
            audit = [
                _audit_row(position, rows[e.originator_id]["slug"], e) for position, e in cases
            ]
            with self.cursor(commit=True) as cursor:
                self._write(cursor, list(rows.values()), audit, batch[-1].id)
            start, done = batch[-1].id, done + len(batch)
            if progress:
                progress(len(batch))
        return done

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        with self.cursor(commit=True) as cursor:
            for statement in CLEAR:
                cursor.execute(statement)
        return self.catch_up(progress)

    def _case_row(self, case_id: UUID) -> dict[str, Any]:
        case: Case = self.register.events.repository.get(case_id)
        steps = timeline.path(timeline.in_force(case.entries), self.register.workflow_of(case))
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

    def _write(
        self, cursor: Any, rows: list[dict[str, Any]], audit: list[tuple[Any, ...]], position: int
    ) -> None:
        for row in rows:
            cursor.execute(
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
                tuple(row.values()),
            )
            for party in json.loads(row["parties"]):
                cursor.execute(
                    self.sql(
                        "INSERT INTO twinflow_parties (party, slug) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    (party, row["slug"]),
                )
        for values in audit:
            cursor.execute(
                self.sql(
                    "INSERT INTO twinflow_audit (position, slug, seq, kind, detail, actor, "
                    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                values,
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
        if state:
            # A settled case's stored state is its state on any later date; the rest are
            # answered from their steps below.
            where.append("((c.state = ? AND c.settled_on <= ?) OR c.settled_on > ?)")
            params += [state, as_of.earliest.isoformat(), as_of.earliest.isoformat()]
        statement = (
            "SELECT c.slug, c.title, c.workflow, c.version, c.parties, c.state, c.since, "
            "c.settled_on, c.steps FROM twinflow_cases c"
        )
        if where:
            statement += " WHERE " + " AND ".join(where)
        statement += " ORDER BY c.slug"
        with self.cursor(commit=False) as cursor:
            cursor.execute(self.sql(statement), tuple(params))
            fetched = cursor.fetchall()
        return [
            row
            for row in map(lambda r: _listing(r, as_of), fetched)
            if not state or state in row["possible"]
        ]

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
            ("actor = ?", actor),
            ("slug = ?", case),
            ("recorded_at >= ?", since and since.isoformat()),
            ("recorded_at <= ?", until and until.isoformat()),
        ):
            if value:
                where.append(clause)
                params.append(value)
        statement = (
            "SELECT position, slug, seq, kind, detail, actor, recorded_at FROM twinflow_audit"
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
    else:
        detail = f"{event.KIND} #{fields.get('target')}: {fields.get('why')}"
    return (
        position,
        slug,
        event.originator_version,
        event.KIND,
        detail,
        event.actor,
        event.timestamp.isoformat(),
    )
