"""A case's history as rows: each event with the state before and after it, and the
corrections and retractions of each, with their one-line summaries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from twinflow import timeline
from twinflow.dates import PartialDate
from twinflow.definitions import Workflow
from twinflow.domain import Case, Entry

# The fields of every history row, in order; a migration leaves the decision fields empty.
HISTORY_KEYS = (
    "seq",
    "kind",
    "trigger",
    "effective_on",
    "decided_on",
    "published_on",
    "party",
    "body",
    "body_name",
    "scope",
    "vote",
    "reference",
    "reason",
    "summary",
    "sources",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "state_before",
    "state_after",
    "retracted",
    "original",
    "changes",
    "amended",
)


def history_rows(
    case: Case, flow: Workflow, date: PartialDate | None, known: dt.datetime | None
) -> list[dict[str, Any]]:
    """Every event of a case in valid-time order up to `date`, as the register held it at
    `known` (now, if None), with the state before and after each."""
    items = timeline.in_force(case.entries, known)
    steps = {s.item.seq: s for s in timeline.path(items, flow)}
    # Retracted events stay in the history, marked, off the path through the workflow.
    gone = timeline.retracted_items(case.entries, known)
    retracted = {i.seq for i in gone}
    rows, state = [], None
    for item in sorted(
        [*items, *gone],
        key=lambda i: (i.trigger != timeline.OPEN or i.kind != "decision", i.date.start, i.seq),
    ):
        if date is not None and item.date.earliest > date.latest:
            continue
        if item.seq in retracted:
            rows.append(history_row(case, item, None, None))
            continue
        step = steps.get(item.seq)
        before, state = (step.before, step.after) if step else (state, state)
        rows.append(history_row(case, item, before, state))
    # Migrations are acts of the register, not decisions: they have no effective date to
    # place them on the valid-time axis, so they follow it, in recording order.
    rows += [
        migration_row(case, e)
        for e in case.entries
        if e.kind == "migrated" and (known is None or e.recorded_at <= known)
    ]
    return rows


def migration_row(case: Case, entry: Entry) -> dict[str, Any]:
    """A move of the case to another version of its workflow: which version judged it."""
    d = entry.data
    return {
        **dict.fromkeys(HISTORY_KEYS),
        "seq": entry.seq,
        "kind": "migrated",
        "trigger": f"{case.workflow} v{d['from_version']} -> v{d['to_version']}",
        "reason": d.get("reason"),
        "sources": [],
        "recorded_at": entry.recorded_at.isoformat(),
        "actor": entry.actor,
        "on_behalf_of": d.get("on_behalf_of"),
        "from_version": d["from_version"],
        "to_version": d["to_version"],
        "from_digest": d["from_digest"],
        "to_digest": d["to_digest"],
        "retracted": False,
        "original": {},
        "changes": [],
        "amended": "",
    }


def history_row(
    case: Case, item: timeline.Item, before: str | None, after: str | None
) -> dict[str, Any]:
    v = item.values
    decision = item.kind == "decision"
    return {
        "seq": item.seq,
        "kind": ("opened" if item.trigger == timeline.OPEN else "decided") if decision else "noted",
        "trigger": v.get("trigger") if decision else v.get("kind"),
        "effective_on": str(item.date) if decision else v.get("on"),
        "decided_on": v.get("decided_on") if decision else v.get("on"),
        "published_on": v.get("published_on"),
        "party": v.get("party")
        or (" + ".join(case.parties) if item.trigger == timeline.OPEN else None),
        "body": v.get("body"),
        "body_name": v.get("body_name"),
        "scope": v.get("scope"),
        "vote": v.get("vote"),
        "reference": v.get("reference"),
        "reason": v.get("reason"),
        "summary": v.get("summary"),
        "sources": list(v.get("sources") or []),
        "recorded_at": item.recorded_at.isoformat(),
        "actor": item.actor,
        "on_behalf_of": case.entries[item.seq - 1].data.get("on_behalf_of"),
        "state_before": before,
        "state_after": after,
        **amendments(case, item),
    }


def amendments(case: Case, item: timeline.Item) -> dict[str, Any]:
    """The corrections and retractions of an item, each with the fields it changed (from,
    to), the item's original values of every field since corrected, and a one-line summary."""
    data = case.entries[item.seq - 1].data
    values = dict(data.get("decision") or data.get("note") or {})
    original: dict[str, Any] = {}
    changes = []
    for c in item.changes:
        fields = {k: {"from": held(item, values, k), "to": v} for k, v in c.changes.items()}
        for name, value in c.changes.items():
            original.setdefault(name, values.get(name))
            values[name] = value
        changes.append(
            {
                "seq": c.seq,
                "kind": c.kind,
                "why": c.why,
                "actor": c.actor,
                "on_behalf_of": case.entries[c.seq - 1].data.get("on_behalf_of"),
                "recorded_at": c.recorded_at.isoformat(),
                "fields": fields,
            }
        )
    retracted = any(c.kind == "retracted" for c in item.changes)
    return {
        "retracted": retracted,
        "original": original,
        "changes": changes,
        "amended": " | ".join(amendment_text(c) for c in changes),
    }


def held(item: timeline.Item, values: Mapping[str, Any], name: str) -> Any:
    """The value of a field in force before a change: a decision's effective date left out
    when it was recorded is its decided_on date."""
    if name == "effective_on" and item.kind == "decision" and values.get(name) is None:
        return values.get("decided_on")
    return values.get(name)


def amendment_text(change: Mapping[str, Any]) -> str:
    fields = changed_fields(change["fields"])
    who = change["actor"]
    if change.get("on_behalf_of"):
        who += f" on behalf of {change['on_behalf_of']}"
    return (
        f"{change['kind']} by #{change['seq']} ({who}, "
        f"{change['recorded_at'][:19]}): {fields + '; ' if fields else ''}why: {change['why']}"
    )


def changed_fields(fields: Mapping[str, Mapping[str, Any]]) -> str:
    """The fields a correction changes, each as `name from -> to`."""
    return ", ".join(
        f"{name} {shown_value(v['from'])} -> {shown_value(v['to'])}" for name, v in fields.items()
    )


def shown_value(value: Any) -> str:
    if value is None or value == []:
        return "(none)"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
