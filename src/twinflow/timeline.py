"""The valid-time axis of a case, without I/O: which decisions are in force (corrections and
retractions applied, as known at a moment), their order by effective date, the path they
take through the workflow, and the state on any date, honest about imprecise dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from twinflow.dates import PartialDate, parse_date
from twinflow.errors import RuleViolation

if TYPE_CHECKING:  # annotations only: `status` reads steps without loading eventsourcing
    from twinflow.definitions import Workflow
    from twinflow.domain import Entry

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
    items, retracted = _fold(entries, known_at)
    return [item for seq, item in sorted(items.items()) if seq not in retracted]


def retracted_items(entries: Iterable[Entry], known_at: dt.datetime | None = None) -> list[Item]:
    """The decisions and notes retracted by `known_at`, with the values they last had."""
    items, retracted = _fold(entries, known_at)
    return [item for seq, item in sorted(items.items()) if seq in retracted]


def revised(item: Item, changes: Mapping[str, Any]) -> Item:
    """`item` with corrected values, its date following a corrected date field."""
    values = {**item.values, **changes}
    date = effective_of(values) if item.kind == "decision" else parse_date(values["on"], "date")
    return replace(item, values=values, date=date)


RECORDS = frozenset({"opened", "decided", "noted"})  # the kinds of event that record an item


def item_of(
    seq: int, kind: str, recorded_at: dt.datetime, actor: str, data: Mapping[str, Any]
) -> Item:
    """The decision or note that an event of one of the RECORDS kinds records (`data`: its
    fields), as it was recorded."""
    if kind == "noted":
        values = dict(data["note"])
        return Item(seq, "note", recorded_at, actor, values, parse_date(values["on"], "date"))
    values = dict(data["decision"])
    if kind == "opened":
        values["trigger"] = OPEN
    return Item(seq, "decision", recorded_at, actor, values, effective_of(values))


def _fold(
    entries: Iterable[Entry], known_at: dt.datetime | None
) -> tuple[dict[int, Item], set[int]]:
    items: dict[int, Item] = {}
    retracted: set[int] = set()
    for entry in entries:
        if known_at is not None and entry.recorded_at > known_at:
            break
        if entry.kind in RECORDS:
            items[entry.seq] = item_of(
                entry.seq, entry.kind, entry.recorded_at, entry.actor, entry.data
            )
        elif entry.kind == "migrated":
            continue  # changes the version the items are judged by, not the items
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
                fixed = revised(target, change.changes)
                items[change.target] = replace(fixed, changes=(*target.changes, change))
    return items, retracted


def version_in_force(
    entries: Iterable[Entry], known_at: dt.datetime | None = None
) -> tuple[int, str]:
    """The workflow version (number, digest) a case was judged by at `known_at` (now, if
    None): the one it was opened with, or the last migration recorded by then."""
    found: tuple[int, str] | None = None
    for entry in entries:
        if found is not None and known_at is not None and entry.recorded_at > known_at:
            break
        if entry.kind == "opened":
            found = (entry.data["workflow_version"], entry.data["workflow_digest"])
        elif entry.kind == "migrated":
            found = (entry.data["to_version"], entry.data["to_digest"])
    if found is None:
        raise ValueError("a case's entries start with its opening")
    return found


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
        elif steps and item.date.latest < steps[0].item.date.earliest:
            raise IllegalPath(item, None, steps)  # surely before the opening: no case yet
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
    # j decisions may have taken effect when all before j may have and none after surely has
    first_not_may = may.index(False) if False in may else len(steps)
    last_must = len(must) - 1 - must[::-1].index(True) if True in must else -1
    valid = list(range(last_must + 1, first_not_may + 1))
    if not valid:  # overlapping imprecise dates; fall back on what has surely happened
        valid = [sum(must)]
    chosen = max(valid)
    possible = tuple(dict.fromkeys(steps[j - 1].after if j else None for j in valid))
    state = steps[chosen - 1].after if chosen else None
    since = next((s for s in reversed(steps[:chosen]) if s.changes_state), None)
    pending = tuple(s for i, s in enumerate(steps[:chosen]) if not must[i])
    return Status(state, len(possible) == 1, possible, since, pending)


def status_answer(
    slug: str,
    title: str,
    parties: list[str],
    workflow: Workflow,
    found: Status,
    date: PartialDate,
    opened: PartialDate | None,
    known_at: dt.datetime,
    lang: str = "en",
    recorded_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """What `status` answers, however the state was found (replayed, or read from the steps
    read model by the register or by lightstatus.py)."""
    result: dict[str, Any] = {
        "case": slug,
        "title": title,
        "workflow": workflow.name,
        "version": workflow.version,
        "state": found.state,
        "certain": found.certain,
        "as_of": date.text,
        "known_at": known_at.isoformat(timespec="seconds"),
        "since": str(found.since.item.date) if found.since else None,
        "since_seq": found.since.item.seq if found.since else None,
        "parties": parties,
    }
    if opened is None and recorded_at is not None:
        result["note"] = (
            f"the register held nothing on {slug!r} at {result['known_at']}: "
            f"it was recorded at {recorded_at.isoformat(timespec='seconds')}"
        )
    elif found.state is None and found.certain:
        result["note"] = f"the case was opened {opened}, after {date}"
    if not found.certain:
        result["possible"] = list(found.possible)
        result["note"] = (
            "; ".join(
                f"the {step.item.date} {workflow.trigger_noun(step.item.trigger, lang)} "
                f"(#{step.item.seq}) may not yet have taken effect"
                for step in found.pending
            )
            or f"imprecise dates around {date} leave the state open"
        )
    return result


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
            opened = (
                f" ({illegal.before[0].item.date}, #{illegal.before[0].item.seq})"
                if illegal.before
                else ""
            )
            return (
                f"cannot record {failed.trigger!r} for case {case!r} effective "
                f"{failed.date}: that is before the case was opened{opened}; check the date"
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


def check_change(
    items: Sequence[Item],
    target: int,
    changes: Mapping[str, Any] | None,
    workflow: Workflow,
    case: str,
) -> list[Step]:
    """The path with item `target` corrected by `changes`, or retracted where `changes` is
    None; a RuleViolation naming the decision or note that would become illegal."""
    old = next(i for i in items if i.seq == target)
    new = revised(old, changes) if changes is not None else None
    changed = [i for i in items if i.seq != target] + ([new] if new else [])
    what = _change_text(old, new, case)
    if old.kind == "note" or old.trigger == OPEN:
        _check_notes_after_opening(changed, new, what)
    try:
        return path(changed, workflow)
    except IllegalPath as illegal:
        raise RuleViolation(_explain_change(illegal, new, what, workflow)) from None


def _change_text(old: Item, new: Item | None, case: str) -> str:
    if old.kind == "note":
        name = f"#{old.seq} (note {old.values.get('kind')!r})"
    elif old.trigger == OPEN:
        name = f"#{old.seq} (the opening)"
    else:
        name = f"#{old.seq} {old.trigger!r}"
    if new is None:
        return f"retract {name} of case {case!r}"
    if new.date == old.date:
        return f"correct {name} of case {case!r}"
    when = "" if new.kind == "note" else "effective "
    return f"correct {name} of case {case!r} to {when}{new.date}"


def _check_notes_after_opening(changed: Sequence[Item], new: Item | None, what: str) -> None:
    opening = next((i for i in changed if i.kind == "decision" and i.trigger == OPEN), None)
    if opening is None:
        return
    for item in changed:
        if item.kind != "note" or item.date.latest >= opening.date.earliest:
            continue
        if new is not None and item.seq == new.seq:
            raise RuleViolation(
                f"cannot {what}: {item.date} would be before the case was opened "
                f"({opening.date}, #{opening.seq}); check the date"
            )
        raise RuleViolation(
            f"cannot {what}: the note #{item.seq} {item.values.get('kind')!r} ({item.date}) "
            f"would be before the opening ({opening.date}); correct #{item.seq} first"
        )


def _explain_change(illegal: IllegalPath, new: Item | None, what: str, workflow: Workflow) -> str:
    failed, state = illegal.item, illegal.state
    opening = illegal.before[0].item if illegal.before else None
    opened = f" ({opening.date}, #{opening.seq})" if opening else ""
    allowed = ", ".join(workflow.allowed_triggers(state)) if state else ""
    if new is not None and failed.seq == new.seq:
        if state is None:
            return (
                f"cannot {what}: effective {failed.date} it would be before the case was "
                f"opened{opened}; check the date"
            )
        last = illegal.before[-1].item
        return (
            f"cannot {what}: {failed.trigger!r} effective {failed.date} would not be allowed: "
            f"the case would be {state!r} since {last.date} (decision #{last.seq}); "
            f"allowed from {state!r}: {allowed or 'none'}"
        )
    if state is None:
        return (
            f"cannot {what}: the decision #{failed.seq} {failed.trigger!r} (effective "
            f"{failed.date}) would be before the opening{opened}; correct #{failed.seq} first"
        )
    return (
        f"cannot {what}: the decision #{failed.seq} {failed.trigger!r} (effective "
        f"{failed.date}) would no longer be allowed, because the case would be {state!r} by "
        f"then (allowed from {state!r}: {allowed or 'none'}); correct or retract "
        f"#{failed.seq} first"
    )
