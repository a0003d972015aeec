"""Tamper evidence: every hash chain and the global digest recomputed from the stored records,
read in batches through the recorder and decoded one by one, never from aggregates in memory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification, StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic

from twinflow import integrity
from twinflow.definitions import digest_of
from twinflow.domain import Case, Recorded, StoredWorkflow, case_id
from twinflow.errors import InvalidInput, NotFound

BATCH = 1000
CREATIONS = {Case.Opened.TOPIC: "case", StoredWorkflow.Registered.TOPIC: "workflow"}
# Only our own topics are decoded: resolving a forged topic would import whatever it names.
TOPICS = {
    value.TOPIC: value
    for aggregate in (Case, StoredWorkflow)
    for value in vars(aggregate).values()
    if isinstance(value, type)
    and issubclass(value, Recorded.Event)
    and isinstance(getattr(value, "TOPIC", None), str)
}
DIGEST = re.compile(r"^(\d+):([0-9a-f]{64})$")
DELETED = "recorded, but missing from the log: events were deleted"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Broken:
    """A stored event whose chain does not hold, and why."""

    name: str  # the case slug, or "workflow NAME vN"
    seq: int
    position: int  # its place in the log, counted from 1; 0 where read by case
    problems: tuple[str, ...]

    def __str__(self) -> str:
        where = f" (position {self.position})" if self.position else ""
        number = f" #{self.seq}" if self.seq else ""
        return f"{self.name}{number}{where}: {'; '.join(self.problems)}"


@dataclass
class Chain:
    """What the next stored event of one case (or workflow) must continue from."""

    name: str
    kind: str  # case | workflow
    last_seq: int = 0
    last_hash: str | None = ""  # None where the previous record could not be decoded


@dataclass
class Report:
    events: int = 0
    chains: dict[UUID | str, Chain] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)
    digest: dict[str, Any] | None = None

    def count(self, kind: str) -> int:
        return sum(1 for c in self.chains.values() if c.kind == kind)


def parse_digest(text: str) -> tuple[int, str]:
    found = DIGEST.match(text.strip().lower())
    if not found:
        raise InvalidInput(
            f"digest {text!r} is not POSITION:HASH as printed by `twinflow digest` "
            "(a count of events, a colon and 64 hexadecimal digits)"
        )
    return int(found[1]), found[2]


def record_line(record: StoredEvent) -> bytes:
    """What the digest covers of one stored record: where it belongs and what it says."""
    stored = record.state
    # A payload rewritten as text (sqlite3's replace() does that) is not the bytes it was.
    raw = stored if isinstance(stored, bytes) else b"text:" + str(stored).encode()
    state = hashlib.sha256(raw).hexdigest()
    meta = [str(record.originator_id), record.originator_version, record.topic, state]
    return integrity.canonical(meta) + b"\n"


def log(recorder: Any, progress: Progress | None = None) -> Iterator[tuple[int, Notification]]:
    """Every stored record in notification order, with its position counted from 1."""
    start, position = 0, 0
    while True:
        batch = recorder.select_notifications(start=start, limit=BATCH, inclusive_of_start=False)
        if not batch:
            return
        for notification in batch:
            position += 1
            yield position, notification
        start = batch[-1].id
        if progress:
            progress(len(batch))


def digest(recorder: Any, progress: Progress | None = None) -> tuple[int, str]:
    running, count = hashlib.sha256(), 0
    for _, record in log(recorder, progress):
        running.update(record_line(record))
        count += 1
    return count, running.hexdigest()


def verify(
    recorder: Any,
    mapper: Any,
    *,
    case: str | None = None,
    expected: tuple[int, str] | None = None,
    names: Mapping[Any, str] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check every chain (or one case's) and, given `expected`, the digest of the log."""
    report = Report()
    checker = _Checker(mapper, report, names or {})
    seen = witnesses(recorder, case)  # read before the log: all it saw was there by then
    if case is not None:
        records = recorder.select_events(case_id(case))
        if not records and not seen.last_seq:
            raise NotFound(f"unknown case {case!r}: see `twinflow list` for the cases")
        for record in records:
            checker.check(record, 0)
        seen.compare(report, None)
        if expected is not None:
            report.digest = _compare(expected, _prefix(recorder, expected[0], progress), report)
        return report
    running = hashlib.sha256()
    at = running.hexdigest() if expected is not None and expected[0] == 0 else None
    last_id = 0
    for position, record in log(recorder, progress):
        checker.check(record, position)
        last_id = record.id
        if expected is not None and position <= expected[0]:
            running.update(record_line(record))
            if position == expected[0]:
                at = running.hexdigest()
    seen.compare(report, last_id)
    if expected is not None:
        report.digest = _compare(expected, (report.events, at), report)
    return report


@dataclass
class Witnesses:
    """What the read models remember having seen of the log: the last notification id they
    took in, the last seq of each case and the (slug, seq) of each audited position. More
    than the log now holds, and events were deleted, even at the tail where no gap shows."""

    position: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    audited: dict[tuple[str, int], int] = field(default_factory=dict)  # (slug, seq): position

    def compare(self, report: Report, last_id: int | None) -> None:
        """Add a broken event to `report` for each one seen but no longer in the log;
        `last_id` is the log's last notification id (None where one case was read)."""
        held = {i: c.last_seq for i, c in report.chains.items() if c.kind == "case"}
        wanted: dict[str, int] = dict(self.last_seq)
        for slug, seq in self.audited:
            wanted[slug] = max(wanted.get(slug, 0), seq)
        missing = {s: held.get(case_id(s), 0) for s in wanted}
        missing = {s: have for s, have in missing.items() if have < wanted[s]}
        first: dict[str, int] = {}
        for (slug, _), position in self.audited.items():
            if slug in missing:
                first[slug] = min(first.get(slug, position), position)
        named: set[int] = set()
        for slug in sorted(missing, key=lambda s: (first.get(s, 0), s)):
            for seq in range(missing[slug] + 1, wanted[slug] + 1):
                position = self.audited.get((slug, seq), 0)
                named.add(position)
                report.broken.append(Broken(f"case {slug!r}", seq, position, (DELETED,)))
        if last_id is not None and self.position > last_id and self.position not in named:
            report.broken.append(Broken("an event", 0, self.position, (DELETED,)))


def witnesses(recorder: Any, case: str | None = None) -> Witnesses:
    """The read models' memory of the log (nothing where they cannot be read)."""
    found = Witnesses()
    datastore = getattr(recorder, "datastore", None)
    if datastore is None:
        return found
    mark = "%s" if type(datastore).__module__.endswith("postgres") else "?"
    where = f" WHERE slug = {mark}" if case is not None else ""
    params = (case,) if case is not None else ()
    try:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT position FROM twinflow_position WHERE name = 'cases'")
            row = cursor.fetchone()
            found.position = int(row["position"] or 0) if row else 0
            cursor.execute(f"SELECT slug, last_seq FROM twinflow_cases{where}", params)
            for row in cursor.fetchall():
                found.last_seq[str(row["slug"])] = int(row["last_seq"] or 0)
            cursor.execute(f"SELECT position, slug, seq FROM twinflow_audit{where}", params)
            for row in cursor.fetchall():
                found.audited[(str(row["slug"]), int(row["seq"]))] = int(row["position"])
    except Exception:  # no read models (yet): no witnesses, the chains are still checked
        return Witnesses()
    return found


def _prefix(recorder: Any, position: int, progress: Progress | None) -> tuple[int, str | None]:
    running, count = hashlib.sha256(), 0
    if position == 0:
        return 0, running.hexdigest()
    for count, record in log(recorder, progress):
        running.update(record_line(record))
        if count == position:
            return count, running.hexdigest()
    return count, None


def _compare(
    expected: tuple[int, str], found: tuple[int, str | None], report: Report
) -> dict[str, Any]:
    position, wanted = expected
    total, actual = found
    result: dict[str, Any] = {"position": position, "hash": wanted, "holds": actual == wanted}
    if actual is None:
        result["problem"] = (
            f"the log has only {total} events, but the digest covers {position}: at least "
            f"{position - total} of them {'was' if position - total == 1 else 'were'} deleted"
        )
    elif actual != wanted:
        first = next((b for b in report.broken if 0 < b.position <= position), None)
        where = (
            f"; the first broken event is at position {first.position} ({first.name} #{first.seq})"
            if first
            else ""
        )
        result["problem"] = (
            f"the first {position} events no longer match the digest: an event among them "
            f"was edited, deleted, reordered or inserted{where}"
        )
    return result


def locate(recorder: Any, seen: Iterable[tuple[int, str, int]]) -> str | None:
    """Where the log first differs from what the read model saw of it: `seen` holds
    (notification id, case slug, seq) of every case event the read model took in, in order.
    Only a pointer for the reader: whoever edited the log may have rebuilt the read model."""
    expected = iter(seen)
    want = next(expected, None)
    position = 0
    for position, record in log(recorder):
        if not record.topic.startswith("twinflow:case:"):
            continue
        if want is None:
            return None  # the read model has not seen this far
        at, slug, seq = want
        found = (record.originator_id, record.originator_version)
        if record.id > at or (record.id == at and found != (case_id(slug), seq)):
            return _gone(position, slug, seq)
        if record.id < at:
            return (
                f"first difference at position {position}: an event the read model never saw "
                "there (inserted or moved)"
            )
        want = next(expected, None)
    return _gone(position + 1, want[1], want[2]) if want is not None else None


def _gone(position: int, slug: str, seq: int) -> str:
    return (
        f"first difference at position {position}: {slug} #{seq}, which the read model saw "
        "there, is no longer there (deleted or moved)"
    )


class _Checker:
    """Follows each chain through the stored records, noting every event that breaks it."""

    def __init__(self, mapper: Any, report: Report, names: Mapping[Any, str]) -> None:
        self.mapper, self.report, self.names = mapper, report, names
        # The mapper's own decoding inlined where it is a plain one (no cipher, compressor
        # or class versions): the same decoder and event object, without resolving the topic
        # and the id's type again for every event. Anything unusual goes to the mapper.
        plain = type(mapper) is Mapper and mapper.cipher is None and mapper.compressor is None
        self._decode_state: Callable[[bytes], Any] | None = (
            mapper.transcoder.decode if plain else None
        )
        self._classes: dict[tuple[str, type], tuple[type, Callable[[Any], Any]]] = {}

    def check(self, record: StoredEvent, position: int) -> None:
        self.report.events += 1
        problems: list[str] = []
        event = self._decode(record, problems)
        chain = self.report.chains.get(record.originator_id)
        if chain is None:
            chain = self._start(record, event, problems)
        seq = record.originator_version
        if seq > chain.last_seq + 1:
            gone = chain.last_seq + 1
            missing = f"#{gone}" if gone == seq - 1 else f"#{gone} to #{seq - 1}"
            problems.append(f"seq gap: {missing} missing before it")
        elif seq <= chain.last_seq:
            problems.append(f"out of order: stored after #{chain.last_seq}")
        stored_hash = None
        if event is not None:
            stored_hash = str(getattr(event, "hash", ""))
            content = _content_problems(event, stored_hash)
            if chain.last_hash is not None and getattr(event, "prev_hash", None) != chain.last_hash:
                before = f"#{chain.last_seq}" if chain.last_seq else "the start of the chain"
                content.append(
                    f"prev_hash mismatch: it does not point at {before}: an event before it "
                    "is missing, reordered or rewritten"
                )
            problems += content
            if content and content[0].startswith(("hash", "content")):
                # Its stored hash is no evidence either way: judge the next event on its own.
                stored_hash = None
        chain.last_seq, chain.last_hash = seq, stored_hash
        if problems:
            self.report.broken.append(Broken(chain.name, seq, position, tuple(problems)))

    def _decode(self, record: StoredEvent, problems: list[str]) -> Any:
        if record.topic not in TOPICS:
            problems.append(f"forged: {record.topic!r} is not a twinflow event type")
            return None
        if not isinstance(record.state, bytes):
            problems.append("content edited: the stored record was rewritten as text")
            return None
        try:
            return self._to_domain_event(record)
        except Exception as exc:  # any way the stored bytes fail to decode is evidence
            problems.append(f"content edited: the stored record cannot be decoded ({_short(exc)})")
            return None

    def _to_domain_event(self, record: StoredEvent) -> Any:
        """What mapper.to_domain_event(record) gives (tests/test_performance_paths.py)."""
        decode = self._decode_state
        if decode is None:
            return self.mapper.to_domain_event(record)
        key = (record.topic, type(record.originator_id))
        found = self._classes.get(key)
        if found is None:
            try:
                cls = resolve_topic(record.topic)
                found = (cls, find_id_convertor(cls, cast(Hashable, key[1])))
            except Exception:
                return self.mapper.to_domain_event(record)  # raises what the mapper raises
            if getattr(cls, "class_version", 1) != 1:
                return self.mapper.to_domain_event(record)
            self._classes[key] = found
        try:
            state = decode(record.state)
        except Exception:
            return self.mapper.to_domain_event(record)
        if type(state) is not dict or "class_version" in state:
            return self.mapper.to_domain_event(record)
        cls, convert = found
        state["originator_id"] = convert(record.originator_id)
        state["originator_version"] = record.originator_version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def _start(self, record: StoredEvent, event: Any, problems: list[str]) -> Chain:
        kind = "workflow" if record.topic.startswith("twinflow:workflow") else "case"
        name = self.names.get(record.originator_id)
        if isinstance(event, Case.Opened):
            name = str(getattr(event, "slug", name))
        elif isinstance(event, StoredWorkflow.Registered):
            name = f"workflow {getattr(event, 'name', '?')} v{getattr(event, 'version', '?')}"
        if event is not None and record.originator_version == 1 and record.topic not in CREATIONS:
            problems.append(f"forged: the first event of a {kind} must open it")
        chain = Chain(name or f"{kind} {record.originator_id}", kind)
        self.report.chains[record.originator_id] = chain
        return chain


def _content_problems(event: Any, stored_hash: str) -> list[str]:
    problems = []
    try:
        if integrity.hash_of(event) != stored_hash:
            problems.append("hash mismatch: its content was edited (or the event forged)")
        if isinstance(event, StoredWorkflow.Registered) and (
            digest_of(event.document) != event.digest
        ):
            problems.append("the stored workflow definition does not match its digest")
    except (AttributeError, TypeError, KeyError, ValueError):
        problems.append("content edited: fields are missing or of the wrong type")
    return problems


def _short(exc: Exception) -> str:
    text = str(exc).split(": ")[-1].strip()
    return text[:80] or type(exc).__name__
