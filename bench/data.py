"""Registers for the benchmarks: cases whose decisions form a legal path through the bundled
twinning workflow, made with the domain's own commands (so every event carries its actor and
hash chain, exactly as `twinflow decide` records it) and saved in large batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from twinflow.application import Register
from twinflow.definitions import Workflow
from twinflow.domain import Case, StoredWorkflow

ACTOR = "bench"
# A walk through the twinning workflow that is legal from `active` and returns to it, with
# notes between the decisions: (command, trigger or note kind).
CYCLE: tuple[tuple[str, str], ...] = (
    ("decide", "reaffirm"),
    ("decide", "suspend"),
    ("note", "visit"),
    ("decide", "resume"),
    ("decide", "freeze"),
    ("note", "letter"),
    ("decide", "resume"),
    ("decide", "make_dormant"),
    ("decide", "resume"),
    ("note", "statement"),
)
BASE = dt.date(1990, 1, 1)


def date_text(day: dt.date, decision: bool) -> str:
    """Mostly exact days; a decision on the first of a month is known to the month, on the
    first of a year to the year (every fourth one uncertain, `1994?`): imprecision without
    changing the order of the path."""
    if decision and day.month == 1 and day.day == 1:
        return f"{day.year}?" if day.year % 4 == 0 else str(day.year)
    if decision and day.day == 1:
        return f"{day.year:04d}-{day.month:02d}"
    return day.isoformat()


def decision(trigger: str, on: str, party: str | None) -> dict[str, Any]:
    return {
        "trigger": trigger,
        "party": party,
        "body": "council" if trigger == "open" else "executive",
        "body_name": None,
        "decided_on": on,
        "effective_on": None,
        "published_on": None,
        "scope": None,
        "vote": None,
        "reason": "benchmark" if trigger in ("freeze", "end", "open") else None,
        "reference": None,
        "sources": [],
    }


def note(kind: str, on: str, party: str) -> dict[str, Any]:
    return {"kind": kind, "on": on, "summary": f"a {kind}", "party": party, "sources": []}


def make_case(slug: str, events: int, flow: Workflow, *, days: int = 1, offset: int = 0) -> Case:
    """A case of `events` events (the opening included), one every `days` days."""
    parties = ["Coevorden", "Brest"]
    start = BASE + dt.timedelta(days=offset)
    case = Case.open(
        slug, f"Case {slug}", parties, flow, decision("open", date_text(start, True), None), ACTOR
    )
    for i in range(1, events):
        command, name = CYCLE[(i - 1) % len(CYCLE)]
        day = start + dt.timedelta(days=i * days)
        party = parties[i % 2]
        if command == "decide":
            case.decide(decision(name, date_text(day, True), party), ACTOR)
        else:
            case.note(note(name, date_text(day, False), party), ACTOR)
    return case


def fill(
    register: Register,
    cases: int,
    events: int | Callable[[int], int],
    *,
    prefix: str = "case",
    batch: int = 1000,
) -> Iterator[int]:
    """Open `cases` cases of `events` events each (or `events(n)` for the n-th), saving
    `batch` events per save; yields the number of events saved after each save."""
    size = events if callable(events) else (lambda n: events)
    flow = register.library.get("twinning")
    pending: list[Any] = []
    stored = register._stored_workflow(flow)  # the bench seeds as open_case does
    if stored is None:
        pending.append(StoredWorkflow.register(flow, ACTOR))
    count = 0
    for n in range(cases):
        pending.append(make_case(f"{prefix}-{n:06d}", size(n), flow, days=30, offset=n % 365))
        count += size(n)
        if count >= batch:
            register.events.save(*pending)
            yield count
            pending, count = [], 0
    if pending:
        register.events.save(*pending)
        yield count


def mixed(n: int) -> int:
    """Events of the n-th case: ten on average, so that one case in ten ends frozen (6 events),
    one in ten suspended (14) and the rest active (10)."""
    return {3: 6, 7: 14}.get(n % 10, 10)
