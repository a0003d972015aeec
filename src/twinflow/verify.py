"""Tamper evidence: every hash chain and the global digest recomputed from the stored records,
read in batches through the recorder and decoded one by one, never from aggregates in memory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import PersistenceError, StoredEvent

from twinflow import fanout, integrity, logread
from twinflow.definitions import digest_of
from twinflow.domain import Case, Recorded, StoredWorkflow, case_id
from twinflow.errors import InvalidInput, NotFound
from twinflow.logread import Stored

if TYPE_CHECKING:
    from twinflow.application import Register
    from twinflow.storage import Location

BATCH = 1000
# Two processes at most unless TWINFLOW_WORKERS says otherwise: each holds every chain its run
# of the log meets, and the command all of them, so memory grows with every process (1,000,001
# events: 173 MB with two, 275 MB with four; bench/RESULTS.md, fix 25).
MOST_PROCESSES = 2
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
Record = StoredEvent | Stored  # read by case through the recorder, or in bulk


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


@dataclass(slots=True)  # one per case: a million-event log may have a hundred thousand
class Chain:
    """What the next stored event of one case (or workflow) must continue from."""

    name: str | None  # None where its events do not name it (see `label`)
    kind: str  # case | workflow
    last_seq: int = 0
    last_hash: Any = ""  # as `packed` left it; None where the previous record was no evidence

    def label(self, chain_id: Any) -> str:
        return self.name or f"{self.kind} {chain_id}"


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


def record_line(record: Record) -> bytes:
    """What the digest covers of one stored record: where it belongs and what it says."""
    stored = record.state
    # A payload rewritten as text (sqlite3's replace() does that) is not the bytes it was.
    raw = stored if isinstance(stored, bytes) else b"text:" + str(stored).encode()
    state = hashlib.sha256(raw).hexdigest()
    meta = [str(record.originator_id), record.originator_version, record.topic, state]
    return integrity.canonical(meta) + b"\n"


def log(recorder: Any, progress: Progress | None = None) -> Iterator[tuple[int, Stored]]:
    """Every stored record in notification order, with its position counted from 1."""
    position = 0
    for batch in logread.batches(recorder, size=BATCH):
        for record in batch:
            position += 1
            yield position, record
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
    location: Location | None = None,
) -> Report:
    """Check every chain (or one case's) and, given `expected`, the digest of the log; a long
    log is shared among processes (fanout.py) when the register's `location` is given."""
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
    events = recorder.max_notification_id() or 0
    parts = fanout.workers(events, most=MOST_PROCESSES) if location else 1
    if location is not None and parts > 1:
        last_id = _in_parts(location, recorder, checker, parts, progress)
        seen.compare(report, last_id)
        if expected is not None:
            report.digest = _compare(expected, _prefix(recorder, expected[0], None), report)
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
    took in, and the highest seq of each case (in its row or its audit trail). More than the
    log now holds, and events were deleted, even at the tail where no gap shows. Only one
    number per case is kept (a hundred thousand cases may be read); where the missing events
    were, and the order to name their cases in, is looked up for those cases alone."""

    position: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)  # slug: the last seq seen
    audited: Callable[[str, int], tuple[int, dict[int, int]]] = lambda slug, after: (0, {})

    def compare(self, report: Report, last_id: int | None) -> None:
        """Add a broken event to `report` for each one seen but no longer in the log;
        `last_id` is the log's last notification id (None where one case was read)."""
        missing: dict[str, int] = {}  # slug: the last seq the log holds
        for slug, wanted in self.last_seq.items():
            chain = report.chains.get(case_id(slug))
            have = chain.last_seq if chain is not None and chain.kind == "case" else 0
            if have < wanted:
                missing[slug] = have
        found = {s: self.audited(s, have) for s, have in missing.items()}
        named: set[int] = set()
        for slug in sorted(missing, key=lambda s: (found[s][0], s)):
            positions = found[slug][1]
            for seq in range(missing[slug] + 1, self.last_seq[slug] + 1):
                position = positions.get(seq, 0)
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
            cursor.execute(
                "SELECT slug, MAX(seq) AS seq FROM ("
                f"SELECT slug, last_seq AS seq FROM twinflow_cases{where} UNION ALL "
                f"SELECT slug, MAX(seq) AS seq FROM twinflow_audit{where} GROUP BY slug"
                ") AS seen GROUP BY slug",
                params * 2,
            )
            rows = iter(cursor.fetchone, None)  # one by one: no list of them all at once
            found.last_seq = {str(r["slug"]): int(r["seq"] or 0) for r in rows}
    except PersistenceError:  # no read models (yet): no witnesses; the chains are checked
        return Witnesses()

    def audited(slug: str, after: int) -> tuple[int, dict[int, int]]:
        """A case's first audited position, and the positions of its events after `after`."""
        try:
            with datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    "SELECT seq, position FROM twinflow_audit WHERE slug = "
                    f"{mark} ORDER BY position",
                    (slug,),
                )
                rows = [(int(r["seq"]), int(r["position"])) for r in cursor.fetchall()]
        except PersistenceError:  # read before, unreadable now: the events go unplaced
            return 0, {}
        positions: dict[int, int] = {}
        for seq, at in rows:  # by position: a seq's first row is the event the models saw;
            if seq > after:  # a later one was recorded since, taking a deleted event's seq
                positions.setdefault(seq, at)
        return (rows[0][1] if rows else 0), positions

    found.audited = audited
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


@dataclass
class RunEnd:
    """What one process found in its run of the log besides its chains (check_part)."""

    events: int
    broken: list[tuple[Any, Broken]]  # with the id of each one's chain
    last_id: int


CHAINS_SENT = 5000  # chains per message from a run's process: the caller joins them as they come


def check_part(register: Register, part: tuple[int, int, int], emit: Any, progress: Any) -> None:
    """In a process of its own: check one run of the log as far as it can alone, then send
    each chain as the run leaves it, with its first record in the run, which only the caller
    can judge (it knows how the runs before left the chain), and then a RunEnd. Chains are
    named from their events; the caller names the others from the read models."""
    after, upto, position = part
    report, last_id = Report(), after
    checker = _Checker(register.events.mapper, report, {}, partial=True)
    for batch in logread.batches(register.events.recorder, after=after, upto=upto):
        for record in batch:
            checker.check(record, position)
            position += 1
        last_id = batch[-1].id
        progress(len(batch))
    chunk: list[tuple[Any, Chain, Seen]] = []
    # each chain's first record was set aside as the chain began: the same order
    for (chain_id, chain), seen in zip(report.chains.items(), checker.deferred, strict=True):
        chunk.append((chain_id, chain, seen))
        if len(chunk) == CHAINS_SENT:
            emit(chunk)
            chunk = []
    if chunk:
        emit(chunk)
    emit(RunEnd(report.events, list(zip(checker.owners, report.broken, strict=True)), last_id))


def _in_parts(
    location: Location,
    recorder: Any,
    checker: _Checker,
    parts: int,
    progress: Progress | None,
) -> int:
    """Check the first run of the log here and the others in processes of their own, and
    join what they found in log order: the first record of each chain in a run is judged
    against the chain as the runs before it left it, so the report is the one a single pass
    gives. Returns the last notification id read."""
    report, names = checker.report, checker.names
    last_id = 0

    def first(run: tuple[int, int, int], told: Progress) -> None:
        nonlocal last_id
        after, upto, position = run
        for batch in logread.batches(recorder, after=after, upto=upto):
            for record in batch:
                checker.check(record, position)
                position += 1
            last_id = batch[-1].id
            told(len(batch))

    runs = fanout.ranges(recorder, parts)
    broken: list[Broken] = []  # of the run being joined
    for _, item in fanout.run(location, "twinflow.verify:check_part", runs, progress, here=first):
        if not isinstance(item, RunEnd):
            broken += _join(report, item, names)
            continue
        report.events += item.events
        for owner, one in item.broken:
            label = report.chains[owner].label(owner)
            if one.name != label:  # as the single pass names it
                one = replace(one, name=label)
            broken.append(one)
        report.broken += sorted(broken, key=lambda b: b.position)
        broken = []
        last_id = max(last_id, item.last_id)
    return last_id


def _join(
    report: Report, chains: list[tuple[Any, Chain, Seen]], names: Mapping[Any, str]
) -> list[Broken]:
    """Continue the report's chains with a run's: judge each chain's first record in the run
    against the chain as the runs before left it, then take the run's end of it."""
    broken = []
    for chain_id, ours, seen in chains:
        chain = report.chains.get(chain_id)
        new = chain is None
        if chain is None:
            name = ours.name if ours.name is not None else names.get(chain_id)
            chain = Chain(name, ours.kind)
            report.chains[chain_id] = chain
        problems = judge(chain, new, seen)
        if problems:
            broken.append(Broken(chain.label(chain_id), seen.seq, seen.position, problems))
        chain.last_seq, chain.last_hash = ours.last_seq, ours.last_hash
    return broken


class KnownCases(Mapping[Any, str]):
    """The read models' names of cases by id, loaded only if a chain needs one (one whose
    opening is missing or unreadable): a hundred thousand cases take some 25 MB."""

    def __init__(self, load: Callable[[], dict[Any, str]]) -> None:
        self._load = load
        self._found: dict[Any, str] | None = None

    def _names(self) -> dict[Any, str]:
        if self._found is None:
            self._found = self._load()
        return self._found

    def __getitem__(self, key: Any) -> str:
        return self._names()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class Seen(NamedTuple):
    """What one stored record says on its own, before it is judged against its chain (a
    tuple: one is made for every record verified)."""

    chain_id: Any
    seq: int
    position: int
    head: tuple[str, ...]  # problems of the record itself (topic, decoding)
    opening: str | None  # a problem only if it is the first record of its chain
    decoded: bool
    prev_hash: Any  # as `packed` left it
    content: tuple[str, ...]  # hash and content problems
    stored_hash: Any  # what the next record must point at, packed (None: no evidence)


def judge(chain: Chain, new: bool, seen: Seen) -> tuple[str, ...]:
    """The problems of a record as the next one of `chain` (`new`: it starts the chain);
    advances the chain past it."""
    problems = list(seen.head)
    if new and seen.opening:
        problems.append(seen.opening)
    if seen.seq > chain.last_seq + 1:
        gone = chain.last_seq + 1
        missing = f"#{gone}" if gone == seen.seq - 1 else f"#{gone} to #{seen.seq - 1}"
        problems.append(f"seq gap: {missing} missing before it")
    elif seen.seq <= chain.last_seq:
        problems.append(f"out of order: stored after #{chain.last_seq}")
    if seen.decoded:
        problems += seen.content
        if chain.last_hash is not None and seen.prev_hash != chain.last_hash:
            before = f"#{chain.last_seq}" if chain.last_seq else "the start of the chain"
            problems.append(
                f"prev_hash mismatch: it does not point at {before}: an event before it "
                "is missing, reordered or rewritten"
            )
    chain.last_seq, chain.last_hash = seen.seq, seen.stored_hash
    return tuple(problems)


class _Checker:
    """Follows each chain through the stored records, noting every event that breaks it.
    `partial`: the records are one run of the log, so the first record of each chain in it
    is kept aside (`deferred`) for the caller to judge once the runs before it are known."""

    def __init__(
        self, mapper: Any, report: Report, names: Mapping[Any, str], *, partial: bool = False
    ) -> None:
        self.mapper, self.report, self.names = mapper, report, names
        self._decoder = logread.Decoder(mapper)
        self._to_domain_event = self._decoder
        self.partial = partial
        self.deferred: list[Seen] = []
        self.owners: list[Any] = []  # the chain id of each broken event, in order

    def check(self, record: Record, position: int) -> None:
        self.report.events += 1
        head: list[str] = []
        event, plain = self._decode(record, head)
        stored_hash, content = None, []
        if event is not None:
            stored_hash = str(getattr(event, "hash", ""))
            content = _content_problems(event, stored_hash, plain)
            if content and content[0].startswith(("hash", "content")):
                # Its stored hash is no evidence either way: judge the next event on its own.
                stored_hash = None
        chain = self.report.chains.get(record.originator_id)
        new = chain is None
        if chain is None:
            chain = self._start(record, event)
        seen = Seen(
            record.originator_id,
            record.originator_version,
            position,
            tuple(head),
            self._opening(record, event),
            event is not None,
            packed(getattr(event, "prev_hash", None)),
            tuple(content),
            packed(stored_hash),
        )
        if new and self.partial:
            self.deferred.append(seen)
            chain.last_seq, chain.last_hash = seen.seq, seen.stored_hash
            return
        problems = judge(chain, new, seen)
        if problems:
            self.report.broken.append(
                Broken(chain.label(record.originator_id), seen.seq, position, problems)
            )
            self.owners.append(record.originator_id)

    def _decode(self, record: Record, problems: list[str]) -> tuple[Any, bool]:
        if record.topic not in TOPICS:
            problems.append(f"forged: {record.topic!r} is not a twinflow event type")
            return None, False
        if not isinstance(record.state, bytes):
            problems.append("content edited: the stored record was rewritten as text")
            return None, False
        try:
            return self._decoder.decode(record)
        except Exception as exc:  # any way the stored bytes fail to decode is evidence
            problems.append(f"content edited: the stored record cannot be decoded ({_short(exc)})")
            return None, False

    @staticmethod
    def _opening(record: Record, event: Any) -> str | None:
        if event is not None and record.originator_version == 1 and record.topic not in CREATIONS:
            return f"forged: the first event of a {_kind(record)} must open it"
        return None

    def _start(self, record: Record, event: Any) -> Chain:
        name: str | None
        if isinstance(event, Case.Opened):
            slug = getattr(event, "slug", self)  # self: no slug at all
            name = str(slug) if slug is not self else self.names.get(record.originator_id)
        elif isinstance(event, StoredWorkflow.Registered):
            name = f"workflow {getattr(event, 'name', '?')} v{getattr(event, 'version', '?')}"
        else:  # a chain that does not start with its opening: the read models may know it
            name = self.names.get(record.originator_id)
        kind = _kind(record)
        chain = Chain(name, kind)
        self.report.chains[record.originator_id] = chain
        return chain


def packed(value: Any) -> Any:
    """A hash as its 32 bytes where it is written as 64 lowercase hexadecimal digits, anything
    else as it is: equal exactly where the text is, in half the memory (a chain of each of a
    hundred thousand cases keeps one, and the first record of each chain in a run two)."""
    if type(value) is str and len(value) == 64:
        with suppress(ValueError):
            raw = bytes.fromhex(value)
            if raw.hex() == value:
                return raw
    return value


def _kind(record: Record) -> str:
    return "workflow" if record.topic.startswith("twinflow:workflow") else "case"


def _content_problems(event: Any, stored_hash: str, plain: bool) -> list[str]:
    problems = []
    try:
        # A mismatch on the fast path is judged again on the reference one: never an
        # alarm that the json module's bytes would not raise.
        if integrity.hash_of(event, plain=plain) != stored_hash and (
            not plain or integrity.hash_of(event) != stored_hash
        ):
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
