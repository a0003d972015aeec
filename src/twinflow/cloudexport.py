"""The log as CloudEvents 1.0 (JSON format, one event per line), built and validated by the
`cloudevents` package: the case as subject, the decision with its partial dates in `data`,
the recording time in the `recordedtime` extension, and `time` only where the occurrence has a
full timestamp: the acts of the register itself (a correction, retraction, migration, a
workflow version stored). A decision's own date is a day at best, never a timestamp."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from twinflow import integrity
from twinflow.exchange import Progress
from twinflow.exporter import decoded, notifications, originator_name

if TYPE_CHECKING:
    from twinflow.application import Register

TYPE_PREFIX = "org.twinflow."
TIMED = {"corrected", "retracted", "migrated", "registered"}
FLATTENED = ("decision", "note")  # fields whose own fields are given at the top of `data`


def cloudevent_lines(
    register: Register, source: str, case: str | None = None, progress: Progress | None = None
) -> Iterator[str]:
    from cloudevents.core.formats.json import JSONFormat

    writer = JSONFormat()
    names: dict[UUID, str] = {}
    for notification in notifications(register, case, progress=progress):
        event = decoded(register, notification)
        ident = notification.originator_id
        assert isinstance(ident, UUID)
        name = originator_name(event)
        if name is not None:
            names[ident] = name
        if case is not None and names.get(ident) != case:
            continue  # the workflow definitions a single case's backup carries
        built = to_cloudevent(event, notification.id, names[ident], source)
        yield writer.write(built).decode() + "\n"


def to_cloudevent(event: Any, position: int, name: str, source: str) -> Any:
    from cloudevents.core.v1.event import CloudEvent

    topic: str = event.TOPIC
    kind = topic.rsplit(":", 1)[-1]
    seq = event.originator_version
    recorded = _rfc3339(event.timestamp.isoformat())
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"{name}/{seq}",
        "source": source,
        "type": TYPE_PREFIX + topic.removeprefix("twinflow:").replace(":", "."),
        "subject": name,
        "datacontenttype": "application/json",
        "recordedtime": recorded,
    }
    if kind in TIMED:
        attributes["time"] = event.timestamp
    built = CloudEvent(attributes, data(event, position, name))  # validates every attribute
    if kind not in TIMED:
        # The package fills in `time` with the present moment where none is given, which
        # would date a decision of 2022 to the day of the export: take it out again.
        del built.get_attributes()["time"]
    return built


def data(event: Any, position: int, name: str) -> dict[str, Any]:
    fields = integrity.fields_of(event)
    content: dict[str, Any] = {} if name.startswith("workflow/") else {"case": name}
    content["seq"] = event.originator_version
    for key, value in fields.items():
        if key in FLATTENED and isinstance(value, dict):
            content.update(value)
        elif key not in ("on_behalf_of", "slug"):
            content[key] = value
    content.update(
        position=position,
        recorded_at=event.timestamp.isoformat(),
        actor=event.actor,
        on_behalf_of=fields.get("on_behalf_of"),
        hash=event.hash,
        prev_hash=event.prev_hash,
    )
    return content


def _rfc3339(text: str) -> str:
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
