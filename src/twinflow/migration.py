"""Whether a case can move to another version of its workflow: its whole timeline replayed
there must be a legal path, every decision taken by a body kind that version allows, with the
fields it requires, and every note of a kind it knows. Pure logic behind `twinflow migrate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twinflow import timeline
from twinflow.definitions import Workflow
from twinflow.timeline import OPEN, Item

MIGRATES, MIGRATED, CANNOT, ALREADY = "migrates", "migrated", "cannot", "already"


@dataclass(frozen=True)
class Verdict:
    """What a migration would do to one case."""

    case: str
    workflow: str
    from_version: int
    to_version: int
    outcome: str  # migrates | cannot | already
    why: str | None = None  # what fails, naming the first event that does
    changes: tuple[str, ...] = ()  # decisions that lead to another state in the new version

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "workflow": self.workflow,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "outcome": self.outcome,
            "why": self.why,
            "changes": list(self.changes),
            "seq": None,
        }


def judge(case: str, items: Sequence[Item], current: Workflow, target: Workflow) -> Verdict:
    """Replay the decisions and notes in force (`items`) against `target`."""
    base: dict[str, Any] = dict(
        case=case, workflow=target.name, from_version=current.version, to_version=target.version
    )
    if current.version == target.version:
        return Verdict(**base, outcome=ALREADY)
    failure = first_failure(items, target)
    if failure is not None:
        return Verdict(**base, outcome=CANNOT, why=failure)
    return Verdict(**base, outcome=MIGRATES, changes=tuple(_changes(items, current, target)))


def first_failure(items: Sequence[Item], target: Workflow) -> str | None:
    """The first event, in valid-time order, that `target` does not allow, and why."""
    problems = [(item, why) for item in items if (why := _rule_problem(item, target))]
    try:
        timeline.path(items, target)
    except timeline.IllegalPath as illegal:
        problems.append((illegal.item, _path_problem(illegal, target)))
    if not problems:
        return None
    # min() keeps the first of equal keys: a rule problem before the path problem it causes
    item, why = min(problems, key=lambda problem: _order(problem[0]))
    return f"{_name(item)} {why}"


def refusal(reports: Sequence[Mapping[str, Any]], name: str, to: int, *, every: bool) -> str:
    """The one-line error for a migration refused because some case cannot move."""
    failed = [r for r in reports if r["outcome"] == CANNOT]
    first = failed[0]
    if not every:
        return (
            f"cannot migrate case {first['case']!r} to {name} v{to}: {first['why']}; correct "
            "or retract that event first, or choose another version"
        )
    return (
        f"{len(failed)} of {len(reports)} {name} case(s) cannot migrate to v{to}, so none "
        f"was migrated; the first, {first['case']!r}: {first['why']}; see every case with "
        f"`twinflow migrate --workflow {name} --to {to} --all --dry-run`"
    )


def _order(item: Item) -> tuple[bool, Any, int]:
    return (item.kind != "decision" or item.trigger != OPEN, item.date.start, item.seq)


def _name(item: Item) -> str:
    if item.kind == "note":
        return f"note #{item.seq} {item.values.get('kind')!r} ({item.date})"
    if item.trigger == OPEN:
        return f"the opening #{item.seq} ({item.date})"
    return f"decision #{item.seq} {item.trigger!r} (effective {item.date})"


def _rule_problem(item: Item, target: Workflow) -> str | None:
    ref = f"{target.name} v{target.version}"
    values = item.values
    if item.kind == "note":
        kind = values.get("kind")
        if kind not in target.note_names:
            return f"is not a kind of note in {ref} (its kinds: {', '.join(target.note_names)})"
        return None
    if item.trigger == OPEN:
        allowed, required, verb = target.open_by, target.open_requires, "open a case"
    else:
        transition = target.transition(item.trigger)
        if transition is None:
            return f"is not a decision of {ref} (its decisions: {', '.join(target.trigger_names)})"
        allowed, required, verb = transition.by, transition.requires, item.trigger
    body = values.get("body")
    if body not in allowed:
        return (
            f"was taken by body kind {body!r}, which may not {verb} in {ref} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )
    missing = [field for field in required if not values.get(field)]
    if missing:
        return f"lacks {', '.join(missing)}, which {ref} requires to {verb}"
    return None


def _path_problem(illegal: timeline.IllegalPath, target: Workflow) -> str:
    ref = f"{target.name} v{target.version}"
    state = illegal.state
    if state is None:
        return f"cannot be placed after the opening in {ref}"
    last = illegal.before[-1].item
    allowed = ", ".join(target.allowed_triggers(state)) or "none"
    return (
        f"is not allowed in {ref}: the case would be {state!r} since {last.date} "
        f"(#{last.seq}); allowed from {state!r}: {allowed}"
    )


def _changes(items: Sequence[Item], current: Workflow, target: Workflow) -> list[str]:
    """Decisions whose state after differs between the versions: the register will answer
    differently about the same history once the case is migrated."""
    try:
        before = {s.item.seq: s.after for s in timeline.path(items, current)}
    except timeline.IllegalPath:
        return []
    return [
        f"#{step.item.seq} {step.item.trigger!r} leads to {step.after!r} in "
        f"v{target.version}, not {before[step.item.seq]!r}"
        for step in timeline.path(items, target)
        if before.get(step.item.seq) != step.after
    ]
