"""The rows the read models hold for a case, and their rebuild from the whole log.

A rebuild reads the log in case order (the store's primary key) rather than in log order, so
that each case is folded exactly once, from its own events, with nothing kept between cases.
The cases are shared among processes by ranges of case ids (fanout.py), and this process
writes all their rows in one transaction: until it commits, readers see the read models as
they were, and an interrupted rebuild leaves them so."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from twinflow import fanout, logread, storage, timeline
from twinflow import steps as step_rows
from twinflow.domain import Case, replay
from twinflow.errors import StorageError

if TYPE_CHECKING:
    from twinflow.application import Register

CASES = "twinflow:case:"
CHUNK = 2000  # events read per query, and about as many rows sent per message
CASE_COLUMNS = "slug, title, workflow, version, parties, state, since, settled_on, steps, last_seq"
AUDIT_COLUMNS = "position, slug, seq, kind, detail, actor, recorded_at, on_behalf_of"
Rows = dict[str, list[tuple[Any, ...]]]  # table name: rows
# SQLite's settings while it loads the read models (_loading): a larger page cache (fix 15),
# and the old tables' pages freed without being overwritten with zeros first (fix 29).
LOADING = {"cache_size": -16384, "secure_delete": 0}


class Head(NamedTuple):
    """What the read models say of a case beside its path: from its opening, its last
    migration and its last event."""

    slug: str
    title: str
    workflow: str
    workflow_version: int
    workflow_digest: str
    parties: list[str]
    version: int

    @classmethod
    def of(cls, case: Case) -> Head:
        return cls(
            case.slug,
            case.title,
            case.workflow,
            case.workflow_version,
            case.workflow_digest,
            case.parties,
            case.version,
        )


def case_row(case: Head, steps: Sequence[timeline.Step]) -> tuple[Any, ...]:
    """A case's row in twinflow_cases (CASE_COLUMNS), from its path through its workflow."""
    since = next((s for s in reversed(steps) if s.changes_state), None)
    return (
        case.slug,
        case.title,
        case.workflow,
        case.workflow_version,
        _json(case.parties),
        steps[-1].after,
        str(since.item.date) if since else None,
        max(s.item.date.iso[2] for s in steps),  # ISO days sort as the days do
        _json(  # steps.STORED
            [
                [
                    *s.item.date.iso[1:],
                    s.after,
                    s.item.date.text,
                    s.changes_state,
                    s.item.seq,
                    s.item.trigger,
                ]
                for s in steps
            ]
        ),
        case.version,
    )


def new_rows() -> Rows:
    return {table: [] for table, _ in TABLES}


def add_case(
    rows: Rows, head: Head, steps: list[timeline.Step], audit: list[tuple[Any, ...]]
) -> None:
    """Add a case's rows in every read model: from its path, and its audit rows as given."""
    rows["twinflow_cases"].append(case_row(head, steps))
    rows["twinflow_parties"] += [(party, head.slug) for party in dict.fromkeys(head.parties)]
    rows["twinflow_audit"] += audit
    rows["twinflow_steps"] += step_rows.rows_of(head.slug, steps)


def _json(value: Any) -> str:
    """JSON as the read models store it (read back with json.loads)."""
    return orjson.dumps(value).decode()


def path_of(register: Register, case: Case) -> list[timeline.Step]:
    return timeline.path(timeline.in_force(case.entries), register.workflow_of(case))


def audit_row(position: int, slug: str, event: Case.Event) -> tuple[Any, ...]:
    """What twinflow_audit says of one event (AUDIT_COLUMNS)."""
    return audit_of(position, slug, event.originator_version, event.KIND, vars(event))


def audit_of(
    position: int, slug: str, seq: int, kind: str, fields: Mapping[str, Any]
) -> tuple[Any, ...]:
    """What twinflow_audit says of the event of kind `kind` whose attributes are `fields`."""
    return (
        position,
        slug,
        seq,
        kind,
        audit_detail(kind, fields),
        fields["actor"],
        fields["timestamp"].isoformat(),
        fields.get("on_behalf_of"),
    )


def audit_detail(kind: str, fields: Mapping[str, Any]) -> str:
    """The audit's one-line account of an event of kind `kind` with attributes `fields`."""
    if "decision" in fields:
        detail = fields["decision"].get("trigger") or "open"
        if kind == "opened":
            detail = f"open {fields['slug']} ({fields['workflow']} v{fields['workflow_version']})"
    elif "note" in fields:
        detail = f"note {fields['note'].get('kind')}"
    elif kind == "migrated":
        detail = f"migrate v{fields['from_version']} -> v{fields['to_version']}: {fields['reason']}"
    else:
        changed = ", ".join(fields.get("changes") or {})
        detail = f"{kind} #{fields.get('target')}{f' ({changed})' if changed else ''}"
        detail += f": {fields.get('why')}"
    return detail


# The events a case can be read from without replaying them (_direct), and their kinds: not
# one that gains a class_version (its older records would need the mapper's upcasting).
DIRECT = {
    event.TOPIC: event.KIND
    for event in (Case.Opened, Case.Decided, Case.Noted)
    if getattr(event, "class_version", 1) == 1
}
Read = tuple[Head, list[timeline.Item], list[tuple[Any, ...]]]  # a case, its items, audit rows


def _replayed(decode: logread.Decoder, records: Sequence[logread.Stored]) -> Read:
    """A case through its events and its aggregate, as every command reads it."""
    events = [decode(r) for r in records]
    case: Case = replay(None, events)
    audit = [audit_row(r.id, case.slug, e) for r, e in zip(records, events, strict=True)]
    return Head.of(case), timeline.in_force(case.entries), audit


def _direct(records: Sequence[logread.Stored]) -> Read | None:
    """A case read straight from its stored JSON (logread.plain_state), without making its
    events and aggregate, where it holds only an opening, decisions and notes, in plain
    JSON, numbered from 1 without a gap (nearly every case): the items and rows the replay
    gives (tests/test_projection.py compares both), for a quarter less CPU in a rebuild's
    projection (bench/RESULTS.md, fix 27). None for any other case."""
    items, audit = [], []
    opening: dict[str, Any] = {}
    for seq, record in enumerate(records, Case.INITIAL_VERSION):
        kind = DIRECT.get(record.topic)
        state = logread.plain_state(record.state, written=False) if kind else None
        if kind is None or state is None or record.originator_version != seq:
            return None
        if (seq == Case.INITIAL_VERSION) != (kind == "opened"):
            return None
        opening = opening or state
        items.append(timeline.item_of(seq, kind, state["timestamp"], state["actor"], state))
        audit.append(audit_of(record.id, opening["slug"], seq, kind, state))
    head = Head(
        opening["slug"],
        opening["title"],
        opening["workflow"],
        opening["workflow_version"],
        opening["workflow_digest"],
        list(opening["parties"]),
        len(records),
    )
    return head, items, audit


# ---------------------------------------------------------------------------- rebuild


def rebuild(register: Register, progress: Callable[[int], None] | None = None) -> int:
    """Empty every read model and fill it again from the log; returns how many events the
    log held. One transaction: all of it, or (on any failure) the read models as they were.

    A long log is shared among processes (fanout.py) by ranges of case ids, this one doing
    the first. The rows of each range go to scratch SQLite files, unindexed, which SQLite
    copies into the read models a file at a time, in key order (bench/RESULTS.md, fixes 21,
    24). The other processes fill several files in turn, and this one copies each as soon
    as it is full, so that only the last waits for the end (fix 39). On PostgreSQL this
    process writes its own rows straight in and reads the others' files."""
    recorder = register.events.recorder
    views = register.views
    last = int(recorder.max_notification_id() or 0)
    sqlite = views.kind == "sqlite"
    others = fanout.workers(last) - 1
    pieces = PIECES
    if sqlite and others:  # every file is attached, and one connection attaches only so many
        others = min(others, storage.MOST_ATTACHED - 1)
        pieces = max(1, min(PIECES, (storage.MOST_ATTACHED - 1) // others))
    ranges = _id_ranges([COMMAND_SHARE * pieces, *[SHARE] * (others * pieces)])
    done = 0

    def counted(events: int) -> None:
        nonlocal done
        done += events
        if progress:
            progress(events)

    with ExitStack() as stack:
        scratch = _scratch_files(stack, register, (1 if sqlite else 0) + others * pieces)
        cursor = stack.enter_context(_transaction(register, scratch))
        if sqlite:
            stack.enter_context(_loading(cursor))
        number = {str(path): n for n, path in enumerate(scratch)}

        def copy(path: str) -> None:
            _copy_in(cursor, views.sql, [(number[path], Path(path))], sqlite)

        def here(part: Part, told: Callable[[int], None]) -> None:
            """This process's range, while the others work on theirs: empty the read
            models (taking the write lock), project, and on SQLite copy its own rows in."""
            if sqlite:  # see _bulk_load
                _bulk_load(cursor, views.create_statements())
            else:  # this transaction waits for the processes reading the log: no idle timeout
                cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            for statement in views.clear_statements():
                cursor.execute(statement)
            ((low, high, path),) = part[0]
            if path is None:
                _project(register, low, high, last, partial(insert, cursor, views.sql), told)
            else:
                _project_into(register, low, high, last, path, told)
                copy(path)

        paths: list[str | None] = [str(path) for path in scratch]
        if not sqlite:
            paths.insert(0, None)
        mine = [(*ranges[0], paths[0])]
        theirs = list(zip(ranges[1:], paths[1:], strict=True))
        parts: list[Part] = [
            (mine, last),
            *(
                ([(*bounds, path) for bounds, path in theirs[k * pieces : (k + 1) * pieces]], last)
                for k in range(others)
            ),
        ]
        if len(parts) == 1:
            here(parts[0], counted)
        else:
            task = "twinflow.projection:project_part"
            for _, full in fanout.run(register.location, task, parts, counted, here=here):
                copy(full)  # another process filled it, and goes on with its next
        views.set_position(cursor, last)
        if sqlite:
            for statement in views.create_statements():
                cursor.execute(statement)  # the indexes again (the tables are there)
    return done


Piece = tuple[uuid.UUID | None, uuid.UUID | None, str | None]  # low, high, scratch file
Part = tuple[list[Piece], int]  # a process's ranges of case ids, and the log's last position
# The widths of the ranges of case ids: this process's is narrower, as it also empties the
# read models and copies every other process's files in while they work (fixes 26, 39).
COMMAND_SHARE, SHARE = 7, 9
PIECES = 4  # files each other process fills in turn (fewer where SQLite cannot attach them)
SCRATCH = "twinflow_scratch"  # the schema names of the scratch files, numbered


def _scratch_files(stack: ExitStack, register: Register, count: int) -> list[Path]:
    """`count` files with the read models' tables, without keys or indexes (rows are only
    appended), in a folder removed on leaving: beside a SQLite register (its disk, not a
    /tmp that may be memory), else the system's."""
    if not count:
        return []
    near = register.location.file.parent if register.location.file else None
    try:
        folder = Path(
            stack.enter_context(tempfile.TemporaryDirectory(dir=near, prefix=".twinflow-rebuild-"))
        )
        files = [folder / f"part-{number}.db" for number in range(count)]
        for path in files:
            with closing(sqlite3.connect(path)) as conn:
                for table, columns in TABLES:
                    conn.execute(f"CREATE TABLE {table} ({columns})")
                conn.commit()
    except (OSError, sqlite3.Error) as error:
        raise _scratch_error(near or Path(tempfile.gettempdir()), error) from None
    return files


def _scratch_error(where: Path, error: Exception) -> StorageError:
    return StorageError(
        f"the rebuild could not write its scratch files in {where} ({error}): free some disk "
        "space there or make the folder writable, and run it again; the read models are as "
        "they were"
    )


@contextmanager
def _transaction(register: Register, scratch: Sequence[Path]) -> Iterator[Any]:
    """The rebuild's transaction; on SQLite with the scratch files attached to it."""
    if register.views.kind != "sqlite":
        with register.views.cursor(commit=True) as cursor:
            yield cursor
        return
    datastore = register.events.recorder.datastore  # type: ignore[attr-defined]
    files = {f"{SCRATCH}{number}": path for number, path in enumerate(scratch)}
    with register.translated(), storage.attached(datastore, files) as cursor:
        yield cursor


def _copy_in(
    cursor: Any, sql: Callable[[str], str], scratch: Sequence[tuple[int, Path]], sqlite: bool
) -> None:
    """The rows of the (numbered) scratch files into the read models: on SQLite by SQLite
    itself, a file at a time in the order of each table's key (one sort at a time: each
    holds up to the page cache in memory, fix 24); on PostgreSQL read and written a chunk
    at a time."""
    for number, path in scratch:
        for table, columns in TABLES:
            if sqlite:
                cursor.execute(
                    f"INSERT INTO main.{table} ({columns}) SELECT {columns} "
                    f"FROM {SCRATCH}{number}.{table} ORDER BY {KEYS[table]}"
                )
                continue
            with closing(sqlite3.connect(path)) as source:
                found = source.execute(f"SELECT {columns} FROM {table}")
                while rows := found.fetchmany(CHUNK):
                    _insert_rows(cursor, sql, table, columns, rows)


@contextmanager
def _loading(cursor: Any) -> Iterator[None]:
    """SQLite's LOADING settings for the rebuild's transaction, and the connection's own
    back afterwards (they are the connection's, not the transaction's). secure_delete is on
    in many builds of SQLite (Debian's): dropping the old tables then writes every freed page
    over with zeros, some 390 MB for a register of a million events. What those pages held
    is the read models, made from the events the same file keeps: nothing to erase."""
    before = {}
    for name in LOADING:
        cursor.execute(f"PRAGMA main.{name}")
        before[name] = cursor.fetchone()[0]
    try:
        for name, value in LOADING.items():
            cursor.execute(f"PRAGMA main.{name} = {value}")
        yield
    finally:
        for name, value in before.items():
            with suppress(Exception):  # never in the way of the error that got here
                cursor.execute(f"PRAGMA main.{name} = {value}")


def _bulk_load(cursor: Any, create: Sequence[str]) -> None:
    """SQLite loads a table fastest without its indexes, built afterwards in one sort each,
    and with a larger page cache (bench/RESULTS.md, fix 15; `_loading`). The read models'
    tables are dropped and made again without their indexes, inside the transaction, so a
    failed rebuild brings them back as they were, and a register from an earlier twinflow
    gets the current layout (fix 23). PostgreSQL clerks may not own the tables, so there the
    rows are deleted and load with the indexes in place."""
    for table, _ in TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")  # and its indexes
    for statement in create:
        if not statement.startswith("CREATE INDEX "):
            cursor.execute(statement)


def _id_ranges(widths: Sequence[int]) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """The case ids cut into ranges as wide, relatively, as `widths` (case ids are
    name-based UUIDs: a hash, spread evenly): [low, high), None meaning open-ended."""
    total, reached, cuts = sum(widths), 0, []
    for width in widths[:-1]:
        reached += width
        cuts.append(uuid.UUID(int=reached * (1 << 128) // total))
    bounds: list[uuid.UUID | None] = [None, *cuts, None]
    return [(bounds[k], bounds[k + 1]) for k in range(len(widths))]


def project_part(
    register: Register,
    part: Part,
    emit: Callable[[str], None],
    progress: Callable[[int], None],
) -> None:
    """Another process's part: the read-model rows of every case whose id is in each of its
    ranges [low, high), from the events up to the log's position `last`, written to the
    range's scratch file, whose name is then emitted for the caller to copy in."""
    pieces, last = part
    for low, high, path in pieces:
        assert path is not None  # only the caller's own range, on PostgreSQL, has none
        _project_into(register, low, high, last, path, progress)
        emit(path)


def _project_into(
    register: Register,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    last: int,
    scratch: str,
    progress: Callable[[int], None],
) -> None:
    try:
        with closing(sqlite3.connect(scratch, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to recover
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            _project(register, low, high, last, partial(insert, conn, as_is), progress)
            conn.execute("COMMIT")
    except sqlite3.Error as error:  # the scratch file's: the register's come translated
        raise _scratch_error(Path(scratch).parent, error) from None


def _project(
    register: Register,
    low: uuid.UUID | None,
    high: uuid.UUID | None,
    last: int,
    emit: Callable[[Rows], None],
    progress: Callable[[int], None],
) -> None:
    decode = logread.Decoder(register.events.mapper)
    direct = decode.plain
    rows = new_rows()
    pending = 0
    for records in _cases(register.events.recorder, low, high, last, progress):
        read = _direct(records) if direct else None
        head, items, audit = read or _replayed(decode, records)
        flow = register.definition_of(head.workflow, head.workflow_version, head.workflow_digest)
        add_case(rows, head, timeline.path(items, flow), audit)
        pending += len(records)
        if pending >= CHUNK:
            emit(rows)
            rows, pending = new_rows(), 0
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


TABLES = (  # the read models' tables a rebuild fills, and their columns
    ("twinflow_cases", CASE_COLUMNS),
    ("twinflow_parties", "party, slug"),
    ("twinflow_audit", AUDIT_COLUMNS),
    ("twinflow_steps", step_rows.COLUMNS),
)
KEYS = {  # their primary keys
    "twinflow_cases": "slug",
    "twinflow_parties": "party, slug",
    "twinflow_audit": "position",
    "twinflow_steps": "slug, idx",
}


def as_is(statement: str) -> str:
    return statement


def insert(cursor: Any, sql: Callable[[str], str], rows: Rows) -> None:
    """Rows of every read model (`Rows`), written by `cursor`; `sql` adapts a statement to
    its backend."""
    for table, columns in TABLES:
        if rows[table]:
            _insert_rows(cursor, sql, table, columns, rows[table])


def _insert_rows(
    cursor: Any, sql: Callable[[str], str], table: str, columns: str, rows: Sequence[Any]
) -> None:
    marks = ", ".join("?" * len(columns.split(",")))
    cursor.executemany(sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), rows)
