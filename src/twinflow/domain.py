"""The Case aggregate and its events, and the stored workflow definitions. No I/O here:
commands check the rules (see timeline.py) and then trigger an event that only records."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from twinflow import integrity
from twinflow.definitions import Workflow
from twinflow.errors import InvalidInput

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
        fields["on_behalf_of"] = on_behalf_of
        timestamp = event_class.create_timestamp()
        digest = integrity.event_hash(
            event_class.TOPIC, self.id, self.version + 1, timestamp, actor, self.last_hash, fields
        )
        self.trigger_event(
            event_class,
            timestamp=timestamp,
            actor=actor,
            prev_hash=self.last_hash,
            hash=digest,
            **fields,
        )

    @classmethod
    def _record_first(
        cls,
        event_class: type[Any],
        originator_id: UUID,
        actor: str,
        on_behalf_of: str | None,
        **fields: Any,
    ) -> Any:
        fields["on_behalf_of"] = on_behalf_of
        timestamp = event_class.create_timestamp()
        digest = integrity.event_hash(
            event_class.TOPIC, originator_id, cls.INITIAL_VERSION, timestamp, actor, "", fields
        )
        return cls._create(
            event_class,
            id=originator_id,
            timestamp=timestamp,
            actor=actor,
            prev_hash="",
            hash=digest,
            **fields,
        )


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
