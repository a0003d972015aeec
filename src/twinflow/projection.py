"""The rows the read models hold for a case, and their rebuild from the whole log.

A rebuild reads the log in case order (the store's primary key) rather than in log order, so
that each case is folded exactly once, from its own events, with nothing kept between cases.
The cases are shared among processes by ranges of case ids (fanout.py); each process sends
back the rows of its cases, and this process writes them all in one transaction: until it
commits, readers see the read models as they were, and an interrupted rebuild leaves them so."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from twinflow import fanout, logread, timeline
from twinflow import steps as step_rows
from twinflow.domain import Case, replay

if TYPE_CHECKING:
    from twinflow.application import Register

CASES = "twinflow:case:"
CHUNK = 2000  # events read per query, and about as many rows sent per message
CASE_COLUMNS = "slug, title, workflow, version, parties, state, since, settled_on, steps, last_seq"
AUDIT_COLUMNS = "position, slug, seq, kind, detail, actor, recorded_at, on_behalf_of"
Rows = dict[str, list[tuple[Any, ...]]]  # table name: rows
CACHE_KB = 16384  # SQLite's page cache while it loads the read models
DEFAULT_CACHE = -2000  # SQLite's own default, restored afterwards


def case_row(case: Case, steps: Sequence[timeline.Step]) -> tuple[Any, ...]:
    """A case's row in twinflow_cases (CASE_COLUMNS), from its path through its workflow."""
    since = next((s for s in reversed(steps) if s.changes_state), None)
    return (
        case.slug,
        case.title,
        case.workflow,
        case.workflow_version,
        json.dumps(case.parties),
        steps[-1].after,
        str(since.item.date) if since else None,
        max(s.item.date.latest for s in steps).isoformat(),
        json.dumps(
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
        case.version,
    )


def path_of(register: Register, case: Case) -> list[timeline.Step]:
    return timeline.path(timeline.in_force(case.entries), register.workflow_of(case))


def audit_row(position: int, slug: str, event: Case.Event) -> tuple[Any, ...]:
    """What twinflow_audit says of one event (AUDIT_COLUMNS)."""
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


# ---------------------------------------------------------------------------- rebuild


def rebuild(register: Register, progress: Callable[[int], None] | None = None) -> int:
    """Empty every read model and fill it again from the log; returns how many events the
    log held. One transaction: all of it, or (on any failure) the read models as they were."""
    recorder = register.events.recorder
    views = register.views
    last = int(recorder.max_notification_id() or 0)
    parts = [(low, high, last) for low, high in _id_ranges(fanout.workers(last))]
    done = 0
    with views.cursor(commit=True) as cursor:
        for statement in views.clear_statements():
            cursor.execute(statement)
        if views.kind == "sqlite":  # see _bulk_load
            _bulk_load(cursor, views.create_statements())
        else:  # this transaction waits for the processes reading the log: no idle timeout
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")

        def write(rows: Rows) -> None:
            _insert(cursor, views.sql, rows)

        def counted(events: int) -> None:
            nonlocal done
            done += events
            if progress:
                progress(events)

        try:
            if len(parts) == 1:
                project_part(register, parts[0], write, counted)
            else:
                task = "twinflow.projection:project_part"
                for _, rows in fanout.run(register.location, task, parts, counted):
                    write(rows)
            views.set_position(cursor, last)
            if views.kind == "sqlite":
                for statement in views.create_statements():
                    cursor.execute(statement)  # the indexes again (the tables are there)
        finally:
            if views.kind == "sqlite":  # the cache is the connection's, not the transaction's
                with suppress(Exception):  # never in the way of the error that got here
                    cursor.execute(f"PRAGMA cache_size = {DEFAULT_CACHE}")
    return done


def _bulk_load(cursor: Any, create: Sequence[str]) -> None:
    """SQLite loads a table fastest without its indexes, built afterwards in one sort each,
    and with a larger page cache (bench/RESULTS.md, fix 15). The indexes are dropped inside
    the transaction, so a failed rebuild brings them back; PostgreSQL clerks may not own the
    tables, so there the rows load with the indexes in place."""
    cursor.execute(f"PRAGMA cache_size = -{CACHE_KB}")
    for statement in create:
        if statement.startswith("CREATE INDEX IF NOT EXISTS "):
            name = statement.split()[5]
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


def _id_ranges(parts: int) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """The case ids cut into `parts` equal ranges (case ids are name-based UUIDs: a hash,
    spread evenly): [low, high), None meaning open-ended."""
    cuts = [uuid.UUID(int=k * (1 << 128) // parts) for k in range(1, parts)]
    bounds: list[uuid.UUID | None] = [None, *cuts, None]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def project_part(
    register: Register,
    part: tuple[uuid.UUID | None, uuid.UUID | None, int],
    emit: Callable[[Rows], None],
    progress: Callable[[int], None],
) -> None:
    """The read-model rows of every case whose id is in [low, high), from the events up to
    position `last`, sent in chunks."""
    low, high, last = part
    decode = logread.Decoder(register.events.mapper)
    rows: Rows = {"cases": [], "parties": [], "audit": [], "steps": []}
    pending = 0
    for records in _cases(register.events.recorder, low, high, last, progress):
        events = [decode(r) for r in records]
        case: Case = replay(None, events)
        steps = path_of(register, case)
        rows["cases"].append(case_row(case, steps))
        rows["parties"] += [(party, case.slug) for party in dict.fromkeys(case.parties)]
        rows["audit"] += [
            audit_row(r.id, case.slug, e) for r, e in zip(records, events, strict=True)
        ]
        rows["steps"] += step_rows.rows_of(case.slug, steps)
        pending += len(records)
        if pending >= CHUNK:
            emit(rows)
            rows, pending = {name: [] for name in rows}, 0
    if pending:
        emit(rows)


def _cases(
    recorder: Any,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    last: int,
    progress: Callable[[int], None],
) -> Iterator[list[logread.Stored]]:
    """Each case's records up to position `last`, one case at a time, in case id order;
    `progress` hears of every record read (a workflow's too)."""
    held: list[logread.Stored] = []
    for batch in logread.by_case(recorder, low, high, last, CHUNK):
        for record in batch:
            if not record.topic.startswith(CASES):
                continue
            if held and record.originator_id != held[0].originator_id:
                yield held
                held = []
            held.append(record)
        progress(len(batch))
    if held:
        yield held


def _insert(cursor: Any, sql: Callable[[str], str], rows: Rows) -> None:
    for table, columns in (
        ("twinflow_cases", CASE_COLUMNS),
        ("twinflow_parties", "party, slug"),
        ("twinflow_audit", AUDIT_COLUMNS),
        ("twinflow_steps", step_rows.COLUMNS),
    ):
        found = rows[table.removeprefix("twinflow_")]
        if found:
            marks = ", ".join("?" * len(columns.split(",")))
            cursor.executemany(sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), found)
