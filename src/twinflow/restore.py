"""Restore of an NDJSON backup (`export --format ndjson`) into a new, empty register: each line
is checked as it streams into one transaction (a complete JSON object, a twinflow event, its
chain continued with the next seq, the previous hash and its own recomputed hash) and stored
back exactly as it was, at its old position. Anything wrong, and nothing is written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from eventsourcing.persistence import Notification

from twinflow import bulk, integrity, verify
from twinflow.definitions import digest_of
from twinflow.domain import Case, Recorded, StoredWorkflow
from twinflow.errors import BadFile, InvalidInput, RuleViolation
from twinflow.exchange import Problem, Progress
from twinflow.exporter import END

if TYPE_CHECKING:
    from twinflow.application import Register

BATCH = 1000
RESTORING = "restoring"
ENVELOPE = ("position", "id", "seq", "topic")
NEEDED = (*ENVELOPE, "timestamp", "actor", "prev_hash", "hash")


def event_classes() -> dict[str, type[Recorded.Event]]:
    """Every twinflow event class by topic; only these are restored (a forged topic could
    otherwise name any importable class)."""
    found: dict[str, type[Recorded.Event]] = {}
    for owner in (Case, StoredWorkflow):
        for value in vars(owner).values():
            topic = getattr(value, "TOPIC", None)
            if isinstance(value, type) and issubclass(value, Recorded.Event) and topic:
                found[topic] = value
    return found


@dataclass
class Restored:
    file: str
    events: int = 0
    cases: int = 0
    workflows: int = 0
    chains: dict[UUID, tuple[int, str]] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return (
            f"restored {self.file}: {self.events} events of {self.cases} case(s) and "
            f"{self.workflows} workflow version(s), one transaction"
        )


def restore(register: Register, path: Path, progress: Progress | None = None) -> Restored:
    held = register.events.recorder.max_notification_id()
    if held:
        raise RuleViolation(
            f"the register {register.location.describe()} already holds events: restore only "
            "into a new, empty register (give another --db)"
        )
    result = Restored(path.name)
    with path.open("rb") as handle:
        reader = _Reader(register, handle, result, path.stat().st_size, progress)
        bulk.restore(register, reader.batches())
    return result


class _Reader:
    def __init__(
        self,
        register: Register,
        handle: IO[bytes],
        result: Restored,
        size: int,
        progress: Progress | None,
    ) -> None:
        self.mapper = register.events.mapper
        self.handle, self.result, self.size, self.progress = handle, result, size, progress
        self.classes = event_classes()
        self.position = 0
        self.running = hashlib.sha256()  # the digest of what is restored, as `digest` gives it
        self.closing: tuple[int, dict[str, Any]] | None = None  # line number, closing line

    def batches(self) -> Iterator[list[Notification]]:
        batch: list[Notification] = []
        done = 0
        number = 0
        for number, raw in enumerate(self.handle, 1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                self.fail(number, "the line is not UTF-8: is this a twinflow backup?")
            if text and self.closing is not None:
                self.fail(number, "a line follows the closing line: is the file two backups?")
            if text:
                found = self.notification(number, text, raw)
                if found is not None:
                    batch.append(found)
            if len(batch) >= BATCH:
                yield batch
                batch = []
                if self.progress:
                    where = self.handle.tell()
                    self.progress(RESTORING, where - done, self.size)
                    done = where
        if batch:
            yield batch
        if not self.result.events:
            self.fail(1, "the file holds no events: is it a backup made by `twinflow export`?")
        self.check_closing(number)  # raised here, the transaction is rolled back
        if self.progress:
            self.progress(RESTORING, self.size - done, self.size)

    def fail(self, number: int, reason: str) -> NoReturn:
        problem = Problem(number, None, None, reason)
        raise BadFile(f"{self.result.file}: {problem}; nothing was restored", [problem])

    def check_closing(self, last: int) -> None:
        """The closing line `export` ends a backup with: there, and matching what was read."""
        if self.closing is None:
            self.fail(
                last,
                "the backup ends without its closing line: it was cut short; restore from a "
                "complete backup",
            )
        number, closing = self.closing
        count, digest = closing.get("events"), closing.get("digest")
        if count != self.result.events:
            self.fail(
                number,
                f"the closing line counts {count!r} events, but the backup holds "
                f"{self.result.events}: events were removed or added; restore from a complete "
                "backup",
            )
        if "case" in closing and digest is None:
            return  # one case's export: counted, but no digest of the whole log
        try:
            expected = verify.parse_digest(str(digest))
        except InvalidInput as error:
            self.fail(number, f"the closing line's {error}")
        found = (self.result.events, self.running.hexdigest())
        if expected != found:
            self.fail(
                number,
                f"the events do not match the digest {digest} of the closing line: an event "
                "was removed, added, changed or reordered; restore from a complete backup",
            )

    def notification(self, number: int, text: str, raw: bytes) -> Notification | None:
        try:
            line = json.loads(text)
        except json.JSONDecodeError as error:
            cut = not raw.endswith(b"\n")  # only the last line can lack its newline
            self.fail(
                number,
                f"the line is not a complete JSON object ({error.msg}, column {error.colno})"
                + ("; the file looks truncated" if cut else ""),
            )
        if isinstance(line, dict) and line.get("end") == END:
            self.closing = (number, line)
            return None
        if not isinstance(line, dict) or any(k not in line for k in NEEDED):
            missing = [k for k in NEEDED if not isinstance(line, dict) or k not in line]
            self.fail(number, f"the line is not a twinflow event: it lacks {', '.join(missing)}")
        position, seq, topic = line["position"], line["seq"], line["topic"]
        if not isinstance(position, int) or position <= self.position:
            self.fail(
                number,
                f"position {position!r} does not come after {self.position}: "
                "the lines are out of order or repeated",
            )
        cls = self.classes.get(topic)
        if cls is None:
            self.fail(number, f"topic {topic!r} is not a twinflow event type")
        try:
            ident = UUID(str(line["id"]))
            state = {k: v for k, v in line.items() if k not in ENVELOPE}
            state["timestamp"] = dt.datetime.fromisoformat(str(state["timestamp"]))
        except ValueError as error:
            self.fail(number, f"the id or timestamp is malformed ({error})")
        event = object.__new__(cls)
        object.__setattr__(
            event, "__dict__", {**state, "originator_id": ident, "originator_version": seq}
        )
        self.check_chain(number, event, ident, seq, topic)
        self.position = position
        stored = self.mapper.to_stored_event(event)
        restored = Notification(
            id=position,
            originator_id=ident,
            originator_version=seq,
            topic=topic,
            state=stored.state,
        )
        self.running.update(verify.record_line(restored))
        return restored

    def check_chain(self, number: int, event: Any, ident: UUID, seq: Any, topic: str) -> None:
        last_seq, last_hash = self.result.chains.get(ident, (0, ""))
        if seq != last_seq + 1:
            self.fail(
                number,
                f"seq {seq!r} where #{last_seq + 1} of its chain comes next: "
                "an event is missing, repeated or out of order",
            )
        if seq == 1 and topic not in (Case.Opened.TOPIC, StoredWorkflow.Registered.TOPIC):
            self.fail(number, f"the chain starts with {topic!r}: its first event must open it")
        if event.prev_hash != last_hash:
            self.fail(
                number,
                "the event does not point at the hash of the one before it in its chain: "
                "an event was changed, removed or reordered",
            )
        try:
            computed = integrity.hash_of(event)
            sound = not isinstance(event, StoredWorkflow.Registered) or (
                digest_of(event.document) == event.digest
            )
        except (AttributeError, TypeError, KeyError, ValueError):
            self.fail(number, "the event lacks fields of its type, or holds values of a wrong type")
        if computed != event.hash or not sound:
            self.fail(
                number,
                "the event does not match its hash: its content was changed after it was "
                "recorded; restore from an untouched backup",
            )
        self.result.chains[ident] = (seq, event.hash)
        self.result.events += 1
        if seq == 1:
            if topic == Case.Opened.TOPIC:
                self.result.cases += 1
            else:
                self.result.workflows += 1
