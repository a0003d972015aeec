"""The Case aggregate and its events, and the stored workflow definitions. No I/O here:
commands check the rules (see timeline.py) and then trigger an event that only records."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding

from twinflow import integrity
from twinflow.definitions import Workflow
from twinflow.errors import InvalidInput, RuleViolation

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
NAMESPACE = uuid5(NAMESPACE_URL, "https://twinflow.example/register")


def case_id(slug: str) -> UUID:
    return uuid5(NAMESPACE, f"case/{slug}")


def workflow_id(name: str, version: int) -> UUID:
    return uuid5(NAMESPACE, f"workflow/{name}/{version}")


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise InvalidInput(
            f"case {slug!r} is not a valid name: use lower-case letters, digits and hyphens, "
            "e.g. coevorden-brest"
        )
    return slug


@dataclass(frozen=True)
class Entry:
    """One recorded event of a case, as the timeline logic sees it."""

    seq: int
    kind: str  # opened | decided | noted | corrected | retracted
    recorded_at: dt.datetime
    actor: str
    hash: str
    data: Mapping[str, Any]


class EntryAsList(Transcoding):
    """An Entry in a snapshot of a case: a short list rather than a dict per entry, because a
    case's snapshot holds every entry of its history."""

    type = Entry
    name = "twinflow_entry"

    def encode(self, obj: Entry) -> list[Any]:
        return [obj.seq, obj.kind, obj.recorded_at, obj.actor, obj.hash, dict(obj.data)]

    def decode(self, data: list[Any]) -> Entry:
        seq, kind, recorded_at, actor, digest, fields = data
        return Entry(seq, kind, recorded_at, actor, digest, fields)


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's project_aggregate without its per-event check against a runtime
    Protocol, which cost more than applying the event itself (a case's whole history is
    replayed on every read)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class Recorded(Aggregate):
    """An aggregate whose events name who recorded them and chain by hash."""

    if TYPE_CHECKING:  # set by the events; eventsourcing makes class annotations init fields
        last_hash: str

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str]
        actor: str
        on_behalf_of: str | None  # the clerk named by --actor where the store knows the actor
        prev_hash: str
        hash: str

    def _record_next(
        self,
        event_class: type[Recorded.Event],
        actor: str,
        on_behalf_of: str | None,
        **fields: Any,
    ) -> None:
        stamped = _stamped(
            event_class, self.id, self.version + 1, actor, on_behalf_of, self.last_hash, fields
        )
        self.trigger_event(event_class, **stamped)

    @classmethod
    def _record_first(
        cls,
        event_class: type[Any],
        originator_id: UUID,
        actor: str,
        on_behalf_of: str | None,
        **fields: Any,
    ) -> Any:
        stamped = _stamped(
            event_class, originator_id, cls.INITIAL_VERSION, actor, on_behalf_of, "", fields
        )
        return cls._create(event_class, id=originator_id, **stamped)


def _stamped(
    event_class: type[Any],
    originator_id: UUID,
    version: int,
    actor: str,
    on_behalf_of: str | None,
    prev_hash: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """An event's fields with who recorded it, when, and its link in the case's hash chain."""
    fields["on_behalf_of"] = on_behalf_of
    timestamp = event_class.create_timestamp()
    digest = integrity.event_hash(
        event_class.TOPIC, originator_id, version, timestamp, actor, prev_hash, fields
    )
    return {
        "timestamp": timestamp,
        "actor": actor,
        "prev_hash": prev_hash,
        "hash": digest,
        **fields,
    }


# eventsourcing redefines every event class of a base aggregate on its subclasses, and
# aggregates with explicit topics need one for each: our aggregates create through their
# own events (Opened, Registered), so the inherited generic one is removed.
del Recorded.Created


class StoredWorkflow(Recorded):
    """A workflow version as first used by a case; cases are judged by this copy."""

    if TYPE_CHECKING:
        name: str
        version_number: int
        digest: str
        document: dict[str, Any]

    TOPIC: ClassVar[str] = "twinflow:workflow"

    class Registered(Recorded.Event, Aggregate.Created):
        TOPIC: ClassVar[str] = "twinflow:workflow:registered"
        name: str
        version: int
        digest: str
        document: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.version_number = self.version
            aggregate.digest = self.digest
            aggregate.document = self.document
            aggregate.last_hash = self.hash

    @classmethod
    def register(
        cls, workflow: Workflow, actor: str, on_behalf_of: str | None = None
    ) -> StoredWorkflow:
        stored: StoredWorkflow = cls._record_first(
            cls.Registered,
            workflow_id(workflow.name, workflow.version),
            actor,
            on_behalf_of,
            name=workflow.name,
            version=workflow.version,
            digest=workflow.digest,
            document=dict(workflow.document),
        )
        return stored


class Case(Recorded):
    """A case (a twinning, say): its parties, its workflow version and every event about it."""

    TOPIC: ClassVar[str] = "twinflow:case"

    class Event(Recorded.Event):
        KIND: ClassVar[str] = ""

        def apply(self, aggregate: Any) -> None:
            aggregate.entries.append(
                Entry(
                    self.originator_version,
                    self.KIND,
                    self.timestamp,
                    self.actor,
                    self.hash,
                    integrity.fields_of(self),
                )
            )
            aggregate.last_hash = self.hash

    class Opened(Event, Aggregate.Created):
        TOPIC: ClassVar[str] = "twinflow:case:opened"
        KIND: ClassVar[str] = "opened"
        slug: str
        title: str
        parties: list[str]
        workflow: str
        workflow_version: int
        workflow_digest: str
        decision: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.slug = self.slug
            aggregate.title = self.title
            aggregate.parties = list(self.parties)
            aggregate.workflow = self.workflow
            aggregate.workflow_version = self.workflow_version
            aggregate.workflow_digest = self.workflow_digest
            aggregate.entries = []
            super().apply(aggregate)

    class Decided(Event):
        TOPIC: ClassVar[str] = "twinflow:case:decided"
        KIND: ClassVar[str] = "decided"
        decision: dict[str, Any]

    class Noted(Event):
        TOPIC: ClassVar[str] = "twinflow:case:noted"
        KIND: ClassVar[str] = "noted"
        note: dict[str, Any]

    class Corrected(Event):
        TOPIC: ClassVar[str] = "twinflow:case:corrected"
        KIND: ClassVar[str] = "corrected"
        target: int
        why: str
        changes: dict[str, Any]

    class Retracted(Event):
        TOPIC: ClassVar[str] = "twinflow:case:retracted"
        KIND: ClassVar[str] = "retracted"
        target: int
        why: str

    class Migrated(Event):
        """The case is judged by another version of its workflow from here on."""

        TOPIC: ClassVar[str] = "twinflow:case:migrated"
        KIND: ClassVar[str] = "migrated"
        from_version: int
        from_digest: str
        to_version: int
        to_digest: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.workflow_version = self.to_version
            aggregate.workflow_digest = self.to_digest
            super().apply(aggregate)

    if TYPE_CHECKING:
        slug: str
        title: str
        parties: list[str]
        workflow: str
        workflow_version: int
        workflow_digest: str
        entries: list[Entry]

    @classmethod
    def open(
        cls,
        slug: str,
        title: str,
        parties: list[str],
        workflow: Workflow,
        decision: dict[str, Any],
        actor: str,
        on_behalf_of: str | None = None,
    ) -> Case:
        case: Case = cls._record_first(
            cls.Opened,
            case_id(slug),
            actor,
            on_behalf_of,
            slug=slug,
            title=title,
            parties=parties,
            workflow=workflow.name,
            workflow_version=workflow.version,
            workflow_digest=workflow.digest,
            decision=decision,
        )
        return case

    def decide(self, decision: dict[str, Any], actor: str, on_behalf_of: str | None = None) -> None:
        self._record_next(self.Decided, actor, on_behalf_of, decision=decision)

    def note(self, note: dict[str, Any], actor: str, on_behalf_of: str | None = None) -> None:
        self._record_next(self.Noted, actor, on_behalf_of, note=note)

    def correct(
        self,
        target: int,
        why: str,
        changes: dict[str, Any],
        actor: str,
        on_behalf_of: str | None = None,
    ) -> None:
        self._record_next(
            self.Corrected, actor, on_behalf_of, target=target, why=why, changes=changes
        )

    def retract(self, target: int, why: str, actor: str, on_behalf_of: str | None = None) -> None:
        self._record_next(self.Retracted, actor, on_behalf_of, target=target, why=why)

    def migrate(
        self,
        workflow: Workflow,
        reason: str | None,
        actor: str,
        on_behalf_of: str | None = None,
    ) -> None:
        """Judge the case by `workflow` from now on; the caller has replayed the timeline on it."""
        if workflow.name != self.workflow:
            raise RuleViolation(
                f"case {self.slug!r} follows workflow {self.workflow!r}, not {workflow.name!r}: "
                "a migration moves a case between versions of its own workflow"
            )
        if workflow.version == self.workflow_version:
            raise RuleViolation(
                f"case {self.slug!r} is already on {self.workflow} v{workflow.version}: "
                "nothing to migrate"
            )
        self._record_next(
            self.Migrated,
            actor,
            on_behalf_of,
            from_version=self.workflow_version,
            from_digest=self.workflow_digest,
            to_version=workflow.version,
            to_digest=workflow.digest,
            reason=reason,
        )
