"""`twinflow status CASE` from a SQLite register's read models, without the event store.

Opening a register through eventsourcing costs most of a `status` process: importing the
Application, the aggregate and its event classes takes ~100 ms, the answer itself under 2 ms.
When the read models are caught up, `status` (without --known-at) is answered from them alone
(`Queries._viewed_status`: `views.status_on`, `steps.status_on`, the stored workflow), so this
module reads the same rows with sqlite3 and builds the same answer.

It answers only when everything the full path checks holds, and returns None otherwise, for
the full path to give today's answer or error: a SQLite register that passes
`storage.check_sqlite_file`, with twinflow's schema installed and its append-only guards in
place, read models caught up with the log, the case in them, its workflow version stored as
one `Registered` event in plain JSON, and no eventsourcing setting in the environment that
could change what the register holds or how it is decoded. It only reads, in one read
transaction (a consistent snapshot beside any writer); the connection is a read-write one
only so that closing it tidies SQLite's -wal and -shm files away, as the full path's does.
tests/test_lightstatus.py compares both paths byte for byte."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, uuid5

from twinflow import dates, steps, storage, timeline
from twinflow.definitions import Workflow, from_document
from twinflow.errors import TwinflowError

if TYPE_CHECKING:
    from twinflow.timeline import Status

# The names below are the register's own, kept here so that loading them does not import the
# modules that define them (each pulls in eventsourcing); tests/test_lightstatus.py checks
# them against views.VIEW, domain.workflow_id, StoredWorkflow.Registered.TOPIC and the table
# of a Register's recorder.
EVENTS_TABLE = "stored_events"
SNAPSHOTS_TABLE = "twinflow_snapshots"
VIEW = "cases"
REGISTERED = "twinflow:workflow:registered"
NAMESPACE = uuid5(NAMESPACE_URL, "https://twinflow.example/register")
# Settings eventsourcing reads from the environment (bare, or prefixed with the application's
# name): any of them may change which file is read or how its events decode.
EVENTSOURCING_SETTINGS = frozenset(
    {
        "AGGREGATE_CACHE_FASTFORWARD",
        "AGGREGATE_CACHE_FASTFORWARD_SKIPPING",
        "AGGREGATE_CACHE_MAXSIZE",
        "APPLICATION_RECORDER_TOPIC",
        "CIPHER_KEY",
        "CIPHER_TOPIC",
        "COMPRESSOR_TOPIC",
        "CREATE_TABLE",
        "DEEPCOPY_FROM_AGGREGATE_CACHE",
        "IS_SNAPSHOTTING_ENABLED",
        "MAPPER_TOPIC",
        "ORIGINATOR_ID_TYPE",
        "PERSISTENCE_MODULE",
        "PROCESS_RECORDER_TOPIC",
        "SINGLE_ROW_TRACKING",
        "SQLITE_DBNAME",
        "SQLITE_LOCK_TIMEOUT",
        "TRACKING_RECORDER_TOPIC",
        "TRANSCODER_TOPIC",
    }
)
PREFIX = "TWINFLOW_"  # eventsourcing's prefix for the application named "twinflow"


def workflow_key(name: str, version: int) -> str:
    """The stored id of a workflow version, as eventsourcing writes it in SQLite."""
    return uuid5(NAMESPACE, f"workflow/{name}/{version}").hex


def status(
    db: str | None, slug: str, as_of: str | None, lang: str
) -> tuple[dict[str, Any], Workflow] | None:
    """The answer `Register.status` gives, and the workflow version it was judged by; None
    wherever the full path has to answer."""
    if _configured_elsewhere():
        return None
    try:
        location = storage.locate(db)
        if location.kind != "sqlite" or location.file is None:
            return None
        location.env()  # refuses a bad TWINFLOW_LOCK_TIMEOUT, as opening the register does
        storage.check_sqlite_file(location.file, create=False)
    except TwinflowError:
        return None
    date = dates.parse_date(as_of, "--as-of") if as_of else dates.today()
    assert location.file is not None
    uri = location.file.absolute().as_uri() + "?mode=rw"  # never creates a file
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)) as conn:
            conn.row_factory = sqlite3.Row
            cursor = conn.cursor()
            cursor.execute("BEGIN")  # one snapshot of the file for every read below
            viewed = _viewed(cursor, slug, date)
            cursor.execute("COMMIT")
    except sqlite3.Error:
        return None  # busy, locked, damaged or not the tables we expect: the full path says
    if viewed is None:
        return None
    case, found, opened, document = viewed
    flow = from_document(document)
    answer = timeline.status_answer(
        slug, case["title"], case["parties"], flow, found, date, opened, dates.now(), lang
    )
    return answer, flow


def _configured_elsewhere() -> bool:
    return any(key.removeprefix(PREFIX) in EVENTSOURCING_SETTINGS for key in os.environ)


def _viewed(
    cursor: sqlite3.Cursor, slug: str, date: dates.PartialDate
) -> tuple[dict[str, Any], Status, dates.PartialDate, dict[str, Any]] | None:
    """What `Queries._viewed_status` reads, where the read models are caught up."""
    if not storage.installed(cursor, "sqlite"):
        return None
    if storage.missing_guards(cursor, "sqlite", EVENTS_TABLE):
        return None  # the full path refuses the register, naming the missing guards
    cursor.execute("SELECT position FROM twinflow_position WHERE name = ?", (VIEW,))
    row = cursor.fetchone()
    cursor.execute(f"SELECT MAX(rowid) AS last FROM {EVENTS_TABLE}")
    last = cursor.fetchone()["last"]
    if row is None or last is None or int(row["position"]) != last:
        return None  # events the read models have not seen: the full path catches up first
    cursor.execute(
        f"SELECT title, workflow, version, parties, {steps.stored_steps()} FROM twinflow_cases "
        "WHERE slug = ?",
        (slug,),
    )
    case = cursor.fetchone()
    if case is None:
        return None
    found = steps.status_on(cursor, lambda statement: statement, slug, case["steps"], date)
    if found is None:
        return None
    document = _stored_document(cursor, case["workflow"], case["version"])
    if document is None:
        return None
    viewed = {k: case[k] for k in ("title", "workflow", "version")}
    viewed["parties"] = json.loads(case["parties"])
    return viewed, found[0], found[1], document


def _stored_document(cursor: sqlite3.Cursor, name: str, version: int) -> dict[str, Any] | None:
    """The definition a workflow version was stored with, where the register holds it as the
    one plain `Registered` event that loading the StoredWorkflow aggregate would replay."""
    key = workflow_key(name, version)
    cursor.execute(f"SELECT 1 FROM {SNAPSHOTS_TABLE} WHERE originator_id = ? LIMIT 1", (key,))
    if cursor.fetchone() is not None:
        return None
    cursor.execute(
        f"SELECT originator_version, topic, state FROM {EVENTS_TABLE} "
        "WHERE originator_id = ? ORDER BY originator_version",
        (key,),
    )
    stored = cursor.fetchall()
    if len(stored) != 1 or stored[0]["originator_version"] != 1:
        return None
    if stored[0]["topic"] != REGISTERED:
        return None
    try:
        state = json.loads(bytes(stored[0]["state"]).decode("utf8"))
    except ValueError:
        return None  # compressed, encrypted or damaged: for eventsourcing's mapper to decode
    document = state.get("document") if isinstance(state, dict) else None
    if not isinstance(document, dict) or _transcoded(document):
        return None
    if document.get("name") != name or document.get("version") != version:
        return None
    return document


def _transcoded(value: Any) -> bool:
    """Whether eventsourcing's transcoder would decode part of a value into another type."""
    if isinstance(value, dict):
        return "_type_" in value or any(_transcoded(v) for v in value.values())
    if isinstance(value, list):
        return any(_transcoded(v) for v in value)
    return False
