"""The stored records of an import's new case events, built straight from their fields.

An import records one event per row. Recording each through the domain (`Case.open`,
`decide`, `note`) builds an event object, applies it to the aggregate and has eventsourcing's
mapper take it apart again, with json's encoder run twice (the hash's sorted encoding and the
stored state): together about twelve times writing the row. Here each record gets exactly what
the domain would give it: the same fields, the timestamp from the event class's own clock, the
hash `_stamped` computes (integrity.event_hash's content, sorted) and the state the mapper
stores (the event's attributes in dataclass order, as it takes them from `vars(event)`).

Both are written by orjson, several times faster than json, where it writes the very bytes
json's encoders write: for strings, None, booleans, integers, and lists and objects (string
keys) of those, which is all an import's rows hold (tests/test_eventbytes.py compares both on
odd text, and whole imports with the mapper). Anything else (a float, which orjson writes
otherwise; a datetime, UUID or other object the encoders write their own way; a subclass; what
orjson refuses) sends the event to the reference path, event_hash and the transcoder
themselves, as does a transcoder other than eventsourcing's JSONTranscoder. A compressor or
cipher the register is set up with is applied as the mapper applies it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper
from eventsourcing.utils import get_topic

from twinflow import integrity
from twinflow.definitions import Workflow
from twinflow.domain import Case, case_id

# What the store's table takes: originator id (hex), version, topic, state.
Record = tuple[str, int, str, bytes]
# The attributes the mapper leaves out of the state: they are columns of their own.
COLUMNS = ("originator_id", "originator_version")
# Values orjson writes as json does (a str: as json's C encoder does with ensure_ascii off;
# tests/test_eventbytes.py checks control characters, quotes, U+2028...), and what holds them.
SCALARS = frozenset({str, bool, int, type(None)})
PLAIN = SCALARS | {list, dict}
STRINGS = frozenset({str})


class Layout:
    """How the mapper stores one event class: its topic and its attributes in order."""

    def __init__(self, event_class: type[Any]) -> None:
        if getattr(event_class, "class_version", 1) > 1:  # the mapper would add it: not here
            raise TypeError(f"{event_class.__name__} has a class_version: record it through")
        self.hash_topic: str = event_class.TOPIC  # the topic the hash covers
        self.kind: str = event_class.KIND
        self.topic = get_topic(event_class)  # the topic stored beside the state
        # vars(event) as the mapper encodes them: the dataclass fields, in order
        self.names = tuple(f.name for f in dataclasses.fields(event_class) if f.name not in COLUMNS)


class Builder:
    """Builds the records of new case events for one actor, in a case's hash chain."""

    def __init__(
        self,
        mapper: Mapper[UUID],
        actor: str,
        on_behalf_of: str | None,
        clock: Callable[[], dt.datetime] | None = None,
        *,
        plain: bool = False,
    ) -> None:
        # Applied to the encoded state as the mapper applies them (COMPRESSOR_TOPIC, CIPHER_TOPIC)
        self.compressor, self.cipher = mapper.compressor, mapper.cipher
        transcoder = mapper.transcoder
        self.encode = transcoder.encode
        self.actor, self.on_behalf_of = actor, on_behalf_of
        # Whether every value given is known to be one of _plain's already (an import's rows
        # hold strings, None and lists of strings only: rowcheck.py, importer._json_cells)
        self.plain = plain
        # The clock every case event is stamped with (eventsourcing's create_timestamp).
        self.clock = clock or Case.Event.create_timestamp
        self.case_topic = get_topic(Case)
        self.opened = Layout(Case.Opened)
        self.decided = Layout(Case.Decided)
        self.noted = Layout(Case.Noted)
        # How eventsourcing's transcoder writes a datetime: {"_type_": name, "_data_": iso}.
        timestamps = (
            transcoder.types.get(dt.datetime) if type(transcoder) is JSONTranscoder else None
        )
        self.direct = type(timestamps) is DatetimeAsISO and type(actor) is str
        self.timestamp_name = timestamps.name if timestamps is not None else ""

    def open(
        self,
        slug: str,
        title: str,
        parties: list[str],
        workflow: Workflow,
        decision: dict[str, Any],
    ) -> Chain:
        """A new case's chain, holding its Opened event (as `Case.open` records it)."""
        chain = Chain(self, case_id(slug), Case.INITIAL_VERSION - 1, "")
        fields = {
            "slug": slug,
            "title": title,
            "parties": parties,
            "workflow": workflow.name,
            "workflow_version": workflow.version,
            "workflow_digest": workflow.digest,
            "decision": decision,
        }
        chain.add(self.opened, fields, {"originator_topic": self.case_topic})
        return chain

    def extend(self, case: Case) -> Chain:
        """The chain of a case the register holds, to add events after its last one."""
        return Chain(self, case.id, case.version, case.last_hash)


class Chain:
    """One case's new records, each linked to the hash of the one before."""

    def __init__(self, builder: Builder, originator_id: UUID, version: int, last_hash: str):
        self.builder = builder
        self.originator_id, self.hex, self.text = (
            originator_id,
            originator_id.hex,
            str(originator_id),
        )
        self.version, self.last_hash = version, last_hash
        self.records: list[Record] = []
        # What each record says, as its decoding gives it back: the event's kind, version and
        # moment, and its own fields (the read models' rows are made from them, backfill.py)
        self.recorded: list[tuple[str, int, str, dict[str, Any]]] = []  # moment: ISO text

    def decide(self, decision: dict[str, Any]) -> None:
        self.add(self.builder.decided, {"decision": decision})

    def note(self, note: dict[str, Any]) -> None:
        self.add(self.builder.noted, {"note": note})

    def add(
        self, layout: Layout, fields: dict[str, Any], created: dict[str, str] | None = None
    ) -> None:
        """One event, as Recorded._record_next (or _record_first) stamps it and the mapper
        stores it: `fields` are the event's own, `created` the topic a creation event adds."""
        builder = self.builder
        version = self.version + 1
        fields["on_behalf_of"] = builder.on_behalf_of
        created = created or {}
        timestamp = builder.clock()
        iso = _iso(timestamp)  # written once, for the hash, the state and `recorded`
        written = None
        if builder.direct and type(timestamp) is dt.datetime and (
            builder.plain or _plain(fields.values())
        ):
            written = self.direct(layout, version, iso, fields, created)
        digest, state = written or self.reference(layout, version, timestamp, fields, created)
        if builder.compressor is not None:
            state = builder.compressor.compress(state)
        if builder.cipher is not None:
            state = builder.cipher.encrypt(state)
        self.records.append((self.hex, version, layout.topic, state))
        self.recorded.append((layout.kind, version, iso, fields))
        self.version, self.last_hash = version, digest

    def direct(
        self,
        layout: Layout,
        version: int,
        iso: str,
        fields: dict[str, Any],
        created: dict[str, str],
    ) -> tuple[str, bytes] | None:
        """The hash and state written by orjson (the moment as `iso`, its ISO text), or None
        where orjson refuses a value."""
        builder = self.builder
        try:
            digest = integrity.event_hash(
                layout.hash_topic,
                self.text,  # the id as text, as _plain gives it
                version,
                iso,  # the moment as text, as _plain gives it
                builder.actor,
                self.last_hash,
                fields,
                plain=True,
            )
            values = {
                "timestamp": {"_type_": builder.timestamp_name, "_data_": iso},
                **created,
                "actor": builder.actor,
                "prev_hash": self.last_hash,
                "hash": digest,
                **fields,
            }
            return digest, orjson.dumps(self.ordered(layout, values))
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
            return None

    def reference(
        self,
        layout: Layout,
        version: int,
        timestamp: dt.datetime,
        fields: dict[str, Any],
        created: dict[str, str],
    ) -> tuple[str, bytes]:
        """The hash as `_stamped` computes it, the state as the mapper encodes it."""
        builder = self.builder
        digest = integrity.event_hash(
            layout.hash_topic,
            self.originator_id,
            version,
            timestamp,
            builder.actor,
            self.last_hash,
            fields,
        )
        values = {
            "timestamp": timestamp,
            **created,
            "actor": builder.actor,
            "prev_hash": self.last_hash,
            "hash": digest,
            **fields,
        }
        return digest, builder.encode(self.ordered(layout, values))

    @staticmethod
    def ordered(layout: Layout, values: dict[str, Any]) -> dict[str, Any]:
        """The event's attributes in the order the mapper finds them on the event."""
        if len(values) != len(layout.names):
            raise TypeError(f"{layout.topic} takes {layout.names}, not {tuple(values)}")
        return {name: values[name] for name in layout.names}


def _iso(moment: dt.datetime) -> str:
    """`moment.isoformat()`. orjson writes a UTC moment the very same way (the microseconds
    left out where there are none), in a third of the time; other zones go to isoformat."""
    if moment.tzinfo is dt.UTC:
        return orjson.dumps(moment)[1:-1].decode()
    return moment.isoformat()


def _plain(values: Collection[Any]) -> bool:
    """Whether orjson writes each of these values as json's encoders do: strings, None,
    booleans and integers (orjson refuses those beyond 64 bits: direct() then gives up), and
    lists and string-keyed objects of those, nothing else. The types are gathered in C; only
    lists and objects are looked into."""
    kinds = set(map(type, values))
    if kinds <= SCALARS:
        return True
    if not kinds <= PLAIN:
        return False
    for value in values:
        kind = type(value)
        if kind is dict:
            if not (set(map(type, value)) <= STRINGS and _plain(value.values())):
                return False
        elif kind is list and not set(map(type, value)) <= SCALARS and not _plain(value):
            return False
    return True
