"""Reading the log in bulk, for the work that reads all of it (read-model catch-up and
rebuild, verify): the stored records straight from the recorder's table, and decoded with the
mapper's own transcoder, without the per-record objects and look-ups of
`recorder.select_notifications` and `mapper.to_domain_event`, which cost more than the
reading itself. tests/test_logread.py checks both give the same records and events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Mapper, find_id_convertor
from eventsourcing.utils import resolve_topic

BATCH = 1000


class Stored(NamedTuple):
    """One stored record and its place in the log (the notification id)."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: Any  # bytes, unless someone rewrote it as text


def batches(
    recorder: Any, after: int = 0, upto: int | None = None, size: int = BATCH
) -> Iterator[list[Stored]]:
    """The records after position `after` (up to `upto`), in log order, `size` at a time."""
    postgres = on_postgres(recorder)
    statement = sql(
        recorder,
        "SELECT {position}, originator_id, originator_version, topic, state FROM {table} "
        "WHERE {position} > ? AND {position} <= ? ORDER BY {position} LIMIT ?",
    )
    last = upto if upto is not None else 2**62
    while after < last:
        batch = _select(recorder, postgres, statement, (after, last, size))
        if not batch:
            return
        yield batch
        after = batch[-1].id


def by_case(
    recorder: Any, low: UUID | None, high: UUID | None, last: int, size: int = BATCH
) -> Iterator[list[Stored]]:
    """The records of the originators whose ids are in [low, high) (None: open-ended), up to
    position `last`, in the order of the store's primary key: each originator's records
    together, by version; `size` at a time. (eventsourcing keeps a UUID as its 32 hex
    digits in SQLite, a uuid in PostgreSQL: both sort as the numbers they are.)"""
    postgres = on_postgres(recorder)

    def select(conditions: list[str], params: list[Any]) -> list[Stored]:
        where = " AND ".join(["{position} <= ?", *conditions])
        statement = sql(
            recorder,
            "SELECT {position}, originator_id, originator_version, topic, state FROM {table} "
            f"WHERE {where} ORDER BY originator_id, originator_version LIMIT ?",
        )
        return _select(recorder, postgres, statement, (last, *params, size))

    def key(value: UUID) -> Any:
        return value if postgres else value.hex

    below, high_key = (["originator_id < ?"], [key(high)]) if high is not None else ([], [])
    if low is None:
        batch = select(below, high_key)
    else:
        batch = select(["originator_id >= ?", *below], [key(low), *high_key])
    while batch:
        yield batch
        if len(batch) < size:
            return
        # The next record's key alone is the lower bound now: given `originator_id >= low`
        # too, SQLite's planner takes that one and scans from `low` again for every batch.
        at = [key(batch[-1].originator_id), batch[-1].originator_version]
        batch = select(["(originator_id, originator_version) > (?, ?)", *below], at + high_key)


def on_postgres(recorder: Any) -> bool:
    return type(recorder).__module__.endswith("postgres")


def sql(recorder: Any, text: str) -> Any:
    """A statement on the recorder's events table, written once for both backends: `{table}`
    is the table, `{position}` its column of log positions, `?` a parameter."""
    if not on_postgres(recorder):
        return text.format(table=recorder.events_table_name, position="rowid")
    from psycopg.sql import SQL, Identifier

    table = SQL("{}.{}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    text = text.replace("?", "%s").format(table="{table}", position="notification_id")
    return SQL(text).format(table=table)


def _select(recorder: Any, postgres: bool, statement: Any, params: tuple[Any, ...]) -> list[Stored]:
    if postgres:
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params, prepare=True)
            return [
                Stored(
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                )
                for r in cursor.fetchall()
            ]
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    ids: dict[str, UUID] = {}  # each originator's id made once per batch, not per record
    return [
        Stored(r[0], ids.get(r[1]) or ids.setdefault(r[1], UUID(r[1])), r[2], r[3], r[4])
        for r in rows
    ]


TYPED = b'"_type_"'


def plain_state(state: Any, *, written: bool = True) -> dict[str, Any] | None:
    """The transcoder's decoding of plain JSON, read by orjson several times faster; None
    where the JSON is not plain, for the transcoder to read. Plain: one typed value only (the
    event's timestamp, a datetime as ISO text) and, where what is read is to be `written`
    again, no escaped character and no number but integers of 64 bits (orjson reads longer
    ones as floats). orjson reads such JSON exactly as the json module does and writes it,
    sorted, exactly as the json module writes it (tests/test_logread.py compares both on
    thousands of random values), so a hash of what it read may be written by orjson too
    (integrity.event_hash, `plain`).

    What is only read (not `written`) is plain where orjson writes back the very bytes it
    read: a number it did not read exactly (an integer beyond 64 bits is read as a float)
    would come back otherwise, and so would an escape orjson does not write (it writes those
    of quotes, backslashes and control characters, and reads them as the json module does).
    That costs less than looking through the values for floats (bench/RESULTS.md, fix 42)."""
    if type(state) is not bytes or state.count(TYPED) != 1 or (written and b"\\u" in state):
        return None
    try:
        found = orjson.loads(state)
    except orjson.JSONDecodeError:  # NaN, Infinity and whatever else only json reads
        return None
    if type(found) is not dict:
        return None
    try:
        if _has_float(found) if written else orjson.dumps(found) != state:
            return None
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (it reads deeper)
        return None
    stamp = found.get("timestamp")
    if type(stamp) is not dict or len(stamp) != 2 or stamp.get("_type_") != "datetime_iso":
        return None
    text = stamp.get("_data_")
    if type(text) is not str:
        return None
    try:
        found["timestamp"] = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return found


SCALARS = frozenset({str, int, bool, type(None)})


def _has_float(value: dict[str, Any]) -> bool:
    """Whether a float is anywhere in what orjson read (an integer too long for 64 bits it
    reads as one): a loop rather than recursion, since it runs for every event read."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        for found in item.values() if type(item) is dict else item:
            kind = type(found)
            if kind in SCALARS:
                continue
            if kind is float:
                return True
            stack.append(found)  # a dict or a list: orjson reads nothing else
    return False


class Decoder:
    """What `mapper.to_domain_event(record)` gives, for a plain mapper (no cipher, compressor
    or class versions) without resolving the topic and the id's type again for every record.
    Anything unusual, including every decoding error, goes to the mapper itself."""

    def __init__(self, mapper: Any) -> None:
        self.mapper = mapper
        plain = type(mapper) is Mapper and mapper.cipher is None and mapper.compressor is None
        self._decode_state: Callable[[bytes], Any] | None = (
            mapper.transcoder.decode if plain else None
        )
        self._classes: dict[tuple[str, type], tuple[type, Callable[[Any], Any]]] = {}

    @property
    def plain(self) -> bool:
        """Whether stored states are eventsourcing's JSON as it is (its own transcoder; no
        cipher, compressor or mapper of another kind), for `plain_state` to read."""
        return self._decode_state is not None and type(self.mapper.transcoder) is JSONTranscoder

    def __call__(self, record: Any) -> Any:
        return self.decode(record)[0]

    def decode(self, record: Any) -> tuple[Any, bool]:
        """The event, and whether it was read from plain JSON (see `plain_state`)."""
        transcode = self._decode_state
        if transcode is None:
            return self.mapper.to_domain_event(record), False
        key = (record.topic, type(record.originator_id))
        found = self._classes.get(key)
        if found is None:
            try:
                cls = resolve_topic(record.topic)
                found = (cls, find_id_convertor(cls, cast(Hashable, key[1])))
            except Exception:
                return self.mapper.to_domain_event(record), False  # raises what it raises
            if getattr(cls, "class_version", 1) != 1:
                return self.mapper.to_domain_event(record), False
            self._classes[key] = found
        state = plain_state(record.state)
        plain = state is not None
        if state is None:
            try:
                state = transcode(record.state)
            except Exception:
                return self.mapper.to_domain_event(record), False
        if type(state) is not dict or "class_version" in state:
            return self.mapper.to_domain_event(record), False
        cls, convert = found
        state["originator_id"] = convert(record.originator_id)
        state["originator_version"] = record.originator_version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event, plain
