"""The valid-time axis of a case, without I/O: which decisions are in force (corrections and
retractions applied, as known at a moment), their order by effective date, the path they
take through the workflow, and the state on any date, honest about imprecise dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from twinflow.dates import PartialDate, parse_date
from twinflow.definitions import Workflow
from twinflow.domain import Entry
from twinflow.errors import RuleViolation

OPEN = "open"


@dataclass(frozen=True)
class Change:
    """A correction or retraction of an earlier event."""

    seq: int
    kind: str  # corrected | retracted
    target: int
    why: str
    actor: str
    recorded_at: dt.datetime
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """A decision or a note with the values in force (after corrections)."""

    seq: int
    kind: str  # decision | note
    recorded_at: dt.datetime
    actor: str
    values: Mapping[str, Any]
    date: PartialDate  # effective date of a decision, the date of a note
    changes: tuple[Change, ...] = ()

    @property
    def trigger(self) -> str:
        return str(self.values.get("trigger") or "")


@dataclass(frozen=True)
class Step:
    """A decision on the path through the workflow, with the state before and after it."""

    item: Item
    before: str | None
    after: str

    @property
    def changes_state(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class Status:
    """The state on a date: certain, or the states it may be in and why."""

    state: str | None
    certain: bool
    possible: tuple[str | None, ...]
    since: Step | None
    pending: tuple[Step, ...]  # decisions that may or may not have taken effect yet


def effective_of(values: Mapping[str, Any]) -> PartialDate:
    return parse_date(values.get("effective_on") or values["decided_on"], "effective date")


def in_force(entries: Iterable[Entry], known_at: dt.datetime | None = None) -> list[Item]:
    """Decisions and notes as the register held them at `known_at` (all, if None),
    corrections merged in and retracted events left out, in recording order."""
    items: dict[int, Item] = {}
    retracted: set[int] = set()
    for entry in entries:
        if known_at is not None and entry.recorded_at > known_at:
            break
        if entry.kind in ("opened", "decided"):
            values = dict(entry.data["decision"])
            if entry.kind == "opened":
                values["trigger"] = OPEN
            items[entry.seq] = Item(
                entry.seq, "decision", entry.recorded_at, entry.actor, values, effective_of(values)
            )
        elif entry.kind == "noted":
            values = dict(entry.data["note"])
            items[entry.seq] = Item(
                entry.seq,
                "note",
                entry.recorded_at,
                entry.actor,
                values,
                parse_date(values["on"], "date"),
            )
        else:
            change = Change(
                entry.seq,
                entry.kind,
                entry.data["target"],
                entry.data["why"],
                entry.actor,
                entry.recorded_at,
                entry.data.get("changes", {}),
            )
            target = items[change.target]
            if entry.kind == "retracted":
                retracted.add(change.target)
                items[change.target] = replace(target, changes=(*target.changes, change))
            else:
                values = {**target.values, **change.changes}
                date = (
                    effective_of(values)
                    if target.kind == "decision"
                    else parse_date(values["on"], "date")
                )
                items[change.target] = replace(
                    target, values=values, date=date, changes=(*target.changes, change)
                )
    return [item for seq, item in sorted(items.items()) if seq not in retracted]


def valid_time_order(items: Iterable[Item]) -> list[Item]:
    """The opening first, then by effective date (its first day), recording order on ties."""
    return sorted(items, key=lambda i: (i.trigger != OPEN, i.date.start, i.seq))


def path(items: Iterable[Item], workflow: Workflow) -> list[Step]:
    """The decisions in valid-time order as a path through the workflow.

    Raises IllegalPath at the first decision the workflow does not allow."""
    steps: list[Step] = []
    state: str | None = None
    for item in valid_time_order(i for i in items if i.kind == "decision"):
        if item.trigger == OPEN:
            after: str | None = workflow.initial
        else:
            after = workflow.next_state(state, item.trigger) if state else None
        if after is None:
            raise IllegalPath(item, state, steps)
        steps.append(Step(item, state, after))
        state = after
    return steps


class IllegalPath(Exception):
    """A decision the workflow does not allow from the state the path reached."""

    def __init__(self, item: Item, state: str | None, before: list[Step]) -> None:
        super().__init__(item.trigger)
        self.item, self.state, self.before = item, state, before


def status_on(steps: Sequence[Step], date: PartialDate) -> Status:
    """The state on `date`; uncertain where an imprecise date straddles it."""
    must = [s.item.date.latest <= date.earliest for s in steps]
    may = [s.item.date.earliest <= date.latest for s in steps]
    valid = [j for j in range(len(steps) + 1) if all(may[:j]) and not any(must[j:])]
    if not valid:  # overlapping imprecise dates; fall back on what has surely happened
        valid = [sum(must)]
    chosen = max(valid)
    possible = tuple(dict.fromkeys(steps[j - 1].after if j else None for j in valid))
    state = steps[chosen - 1].after if chosen else None
    since = next((s for s in reversed(steps[:chosen]) if s.changes_state), None)
    pending = tuple(s for i, s in enumerate(steps[:chosen]) if not must[i])
    return Status(state, len(possible) == 1, possible, since, pending)


def check_path(items: Sequence[Item], candidate: Item, workflow: Workflow, case: str) -> list[Step]:
    """The path with `candidate` added, or a RuleViolation naming the decision that fails."""
    try:
        return path([*items, candidate], workflow)
    except IllegalPath as illegal:
        raise RuleViolation(explain(illegal, candidate, workflow, case)) from None


def explain(illegal: IllegalPath, candidate: Item, workflow: Workflow, case: str) -> str:
    failed = illegal.item
    allowed = ", ".join(workflow.allowed_triggers(illegal.state)) if illegal.state else ""
    where = (
        f"it is {illegal.state!r} since {illegal.before[-1].item.date} "
        f"(decision #{illegal.before[-1].item.seq})"
        if illegal.before
        else "it is not open"
    )
    if failed.seq == candidate.seq:
        if illegal.state is None:
            return (
                f"cannot record {failed.trigger!r} for case {case!r} effective "
                f"{failed.date}: that is before the case was opened; check the date"
            )
        return (
            f"cannot {failed.trigger} case {case!r} effective {failed.date}: {where}; "
            f"allowed from {illegal.state!r}: {allowed or 'none'}"
        )
    return (
        f"cannot record {candidate.trigger!r} effective {candidate.date} for case "
        f"{case!r}: the later decision #{failed.seq} {failed.trigger!r} (effective "
        f"{failed.date}) would no longer be allowed, because the case would be "
        f"{illegal.state!r} by then (allowed from {illegal.state!r}: {allowed or 'none'}); "
        "check the dates, or correct or retract the later decision first"
    )
