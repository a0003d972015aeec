"""Export, streamed in batches from the global order: `ndjson` is the complete log, every
stored field of every event (a backup that `restore` reads); `csv` is the import format, one
row per decision or note in force; `cloudevents` is CloudEvents 1.0 JSON for open data."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import Notification

from twinflow import timeline
from twinflow.domain import Case, StoredWorkflow, case_id, workflow_id
from twinflow.exchange import COLUMNS, Progress

if TYPE_CHECKING:
    from twinflow.application import Register

BATCH = 1000
EXPORT_FORMATS = ("ndjson", "csv", "cloudevents")
EXPORTING = "exporting"
# Stored with each event by eventsourcing, and given apart in a backup line.
KEYS = ("originator_id", "originator_version")
# The closing line of an ndjson backup: {"end": END, "events": N, "digest": "N:HASH"} for the
# whole log (the digest as `twinflow digest` prints it), {"end": END, "case": SLUG, "events": N}
# for one case. `restore` refuses a backup without it: it was cut short.
END = "twinflow backup"


def export(
    register: Register,
    fmt: str,
    *,
    case: str | None = None,
    source: str | None = None,
    progress: Progress | None = None,
) -> Iterator[str]:
    """The lines of an export, each ending in a newline."""
    if case is not None:
        register.get_case(case)  # an unknown case fails before anything is written
    if fmt == "csv":
        return csv_lines(register, case, progress)
    if fmt == "cloudevents":
        from twinflow.cloudexport import cloudevent_lines

        return cloudevent_lines(register, source or default_source(register), case, progress)
    return backup_lines(register, case, progress)


def default_source(register: Register) -> str:
    location = register.location
    name = location.path.stem if location.path else location.url.rsplit("/", 1)[-1].split("?")[0]
    return f"urn:twinflow:register:{name}"


# ---------------------------------------------------------------------------- reading


def notifications(
    register: Register,
    case: str | None = None,
    topics: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> Iterator[Notification]:
    """Stored events in the global order: all, or one case's with the workflows it uses."""
    recorder = register.events.recorder
    total = recorder.max_notification_id() or 0
    if case is not None:
        yield from _case_notifications(register, case)
        return
    start = 0
    while batch := recorder.select_notifications(
        start=start, limit=BATCH, topics=topics, inclusive_of_start=False
    ):
        yield from batch
        if progress:  # by positions passed, so a filtered read (csv) ends at 100% too
            progress(EXPORTING, batch[-1].id - start, total)
        start = batch[-1].id


def _case_notifications(register: Register, case: str) -> Iterator[Notification]:
    from twinflow.bulk import Table

    found = register.get_case(case)
    versions = {found.workflow_version}
    for entry in found.entries:
        if entry.kind == "opened":
            versions.add(int(entry.data["workflow_version"]))
        elif entry.kind == "migrated":
            versions.update({int(entry.data["from_version"]), int(entry.data["to_version"])})
    ids = [workflow_id(found.workflow, v) for v in sorted(versions)] + [case_id(case)]
    yield from Table(register).select(ids)


def decoded(register: Register, notification: Notification) -> Any:
    return register.events.mapper.to_domain_event(notification)


# ---------------------------------------------------------------------------- ndjson


def backup_lines(
    register: Register, case: str | None = None, progress: Progress | None = None
) -> Iterator[str]:
    """One JSON object per stored event: position, id, seq, topic, then every stored field in
    stored order (the recording time as `timestamp`), so that restore can rebuild it exactly;
    then the closing line, with the count of events and (for the whole log) their digest."""
    from twinflow.verify import record_line

    running, count = hashlib.sha256(), 0
    for notification in notifications(register, case, progress=progress):
        running.update(record_line(notification))
        count += 1
        event = decoded(register, notification)
        line: dict[str, Any] = {
            "position": notification.id,
            "id": str(notification.originator_id),
            "seq": notification.originator_version,
            "topic": notification.topic,
        }
        for key, value in vars(event).items():
            if key not in KEYS:
                line[key] = value.isoformat() if key == "timestamp" else value
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
    closing: dict[str, Any] = {"end": END, "events": count}
    if case is None:
        closing["digest"] = f"{count}:{running.hexdigest()}"
    else:
        closing = {"end": END, "case": case, "events": count}
    yield json.dumps(closing, ensure_ascii=False, separators=(",", ":")) + "\n"


# ---------------------------------------------------------------------------- csv


def csv_lines(
    register: Register, case: str | None = None, progress: Progress | None = None
) -> Iterator[str]:
    """The import format: per case (in the order they were opened) its opening, then every
    decision and note in force, in valid-time order as `history` lists them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    if case is not None:
        slugs: Iterator[str] = iter([case])
    else:
        slugs = (
            decoded(register, n).slug
            for n in notifications(register, topics=(Case.Opened.TOPIC,), progress=progress)
        )
    for slug in slugs:
        for row in case_rows(register.get_case(slug)):
            writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def case_rows(case: Case) -> Iterator[dict[str, Any]]:
    items = timeline.in_force(case.entries)
    items.sort(key=lambda i: (i.trigger != timeline.OPEN or i.kind != "decision", i.date.start))
    for item in items:
        v = item.values
        sources = " ".join(v.get("sources") or [])
        if item.kind == "note":
            yield {
                "case": case.slug,
                "action": f"note:{v['kind']}",
                "party": v.get("party"),
                "decided_on": v["on"],
                "source": sources,
                "summary": v["summary"],
            }
            continue
        row = {
            "case": case.slug,
            "action": v["trigger"],
            "by": v["body"],
            "party": v.get("party"),
            "body_name": v.get("body_name"),
            "decided_on": v["decided_on"],
            "effective_on": v.get("effective_on"),
            "published_on": v.get("published_on"),
            "scope": v.get("scope"),
            "vote": v.get("vote"),
            "reference": v.get("reference"),
            "reason": v.get("reason"),
            "source": sources,
        }
        if item.trigger == timeline.OPEN:
            row.update(workflow=case.workflow, title=case.title, parties="; ".join(case.parties))
        yield row


def originator_name(event: Any) -> str | None:
    """The name an event's aggregate goes by, where its creation event says it."""
    if isinstance(event, Case.Opened):
        return str(event.slug)
    if isinstance(event, StoredWorkflow.Registered):
        return f"workflow/{event.name}/{event.version}"
    return None


def uuid_of(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
