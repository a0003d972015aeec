"""Corrections and retractions: which event they may name, which fields a correction may carry
for it, and those fields checked the way `decide` and `note` check the original."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinflow import timeline
from twinflow.decisions import check_party, check_requires, decision_fields, note_fields
from twinflow.definitions import Workflow
from twinflow.domain import Case, Entry
from twinflow.errors import InvalidInput, NotFound, RuleViolation

# service keyword -> the option that gives it, for messages
OPTIONS = {
    "on": "--on",
    "effective": "--effective",
    "published": "--published",
    "by": "--by",
    "party": "--party",
    "body_name": "--body-name",
    "scope": "--scope",
    "vote": "--vote",
    "reference": "--ref",
    "reason": "--reason",
    "sources": "--source",
    "kind": "--kind",
    "summary": "--summary",
}
# service keyword -> the field of a decision it corrects
DECISION = {
    "on": "decided_on",
    "effective": "effective_on",
    "published": "published_on",
    "by": "body",
    "party": "party",
    "body_name": "body_name",
    "scope": "scope",
    "vote": "vote",
    "reference": "reference",
    "reason": "reason",
    "sources": "sources",
}
NOTE = ("on", "kind", "summary", "party", "sources")


def check_why(why: str) -> str:
    if not why or not why.strip():
        raise InvalidInput("--why is empty: say why, e.g. --why 'the minutes give 2021'")
    return why.strip()


def target(case: Case, seq: int, verb: str) -> Entry:
    """The event `seq` of `case`, if it can be corrected (verb 'correct') or retracted."""
    slug, entries = case.slug, case.entries
    if not 1 <= seq <= len(entries):
        raise NotFound(
            f"case {slug!r} has no event #{seq}: its events are #1 to #{len(entries)}; "
            f"see `twinflow history {slug}`"
        )
    entry = entries[seq - 1]
    if entry.kind == "corrected":
        first = entry.data["target"]
        raise RuleViolation(
            f"#{seq} of case {slug!r} is a correction (of #{first}): it cannot be {verb}ed; "
            f"correct #{first} again with the values it should have"
        )
    if entry.kind == "retracted":
        first = entry.data["target"]
        raise RuleViolation(
            f"#{seq} of case {slug!r} is a retraction (of #{first}): it cannot be {verb}ed; "
            f"if #{first} stands after all, record it again"
        )
    if entry.kind == "migrated":
        back = entry.data["from_version"]
        raise RuleViolation(
            f"#{seq} of case {slug!r} is a migration (to v{entry.data['to_version']}): it "
            f"cannot be {verb}ed; to go back, `twinflow migrate {slug} --to {back} --reason ...`"
        )
    retraction = next(
        (e for e in entries if e.kind == "retracted" and e.data["target"] == seq), None
    )
    if retraction is not None:
        already = "there is nothing in force to correct" if verb == "correct" else "nothing to do"
        raise RuleViolation(
            f"#{seq} of case {slug!r} was already retracted (by #{retraction.seq}): {already}"
        )
    if verb == "retract" and entry.kind == "opened":
        raise RuleViolation(
            f"the opening (#{seq}) of case {slug!r} cannot be retracted: correct it with "
            f"`twinflow correct {slug} {seq} --why ...`, or open a new case"
        )
    return entry


def changes(
    case: Case, flow: Workflow, item: timeline.Item, given: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields that change, checked as `decide` or `note` would check the whole event."""
    if not given:
        raise InvalidInput(
            "a correction must change at least one field: give e.g. --on, --effective, "
            "--reason or --summary (see `twinflow correct --help`)"
        )
    opening = item.kind == "decision" and item.trigger == timeline.OPEN
    if item.kind == "note":
        allowed, what = list(NOTE), f"a note ({item.values.get('kind')!r})"
    elif opening:
        allowed, what = [o for o in DECISION if o != "party"], "the opening"
    else:
        allowed, what = list(DECISION), f"a decision ({item.trigger!r})"
    wrong = [o for o in given if o not in allowed]
    if wrong:
        extra = " (a case's parties are named when it is opened)" if opening else ""
        raise InvalidInput(
            f"{OPTIONS[wrong[0]]} does not apply to #{item.seq}, {what}{extra}: it takes "
            f"{', '.join(OPTIONS[o] for o in allowed)}"
        )
    current = item.values
    if item.kind == "note":
        new = _corrected_note(case, flow, current, given)
    else:
        new = _corrected_decision(case, flow, current, given, opening)
    found = {k: v for k, v in new.items() if k != "trigger" and v != current.get(k)}
    if not found:
        raise InvalidInput(
            f"nothing to correct: #{item.seq} of case {case.slug!r} already has "
            f"{', '.join(f'{OPTIONS[o]} {given[o]!r}' for o in given)}"
        )
    return found


def _corrected_decision(
    case: Case,
    flow: Workflow,
    current: Mapping[str, Any],
    given: Mapping[str, Any],
    opening: bool,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        o: given[o] if o in given else current.get(f) for o, f in DECISION.items()
    }
    trigger = str(current["trigger"])
    new = decision_fields(trigger, **{**value, "sources": value["sources"] or ()})
    if opening:
        allowed, required = flow.open_by, flow.open_requires
    else:
        transition = flow.transition(trigger)
        if transition is None:  # the stored definition always knows its own triggers
            raise NotFound(f"unknown decision {trigger!r} in workflow {flow.name!r}")
        allowed, required = transition.by, transition.requires
        check_party(case, new["party"])
    if new["body"] not in allowed:
        raise RuleViolation(
            f"body kind {new['body']!r} may not {trigger} a {flow.name!r} case: allowed: "
            f"{', '.join(allowed)}"
        )
    check_requires(required, new, trigger)
    return new


def _corrected_note(
    case: Case, flow: Workflow, current: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    value: dict[str, Any] = {o: given[o] if o in given else current.get(o) for o in NOTE}
    new = note_fields(
        str(value["kind"]),
        on=value["on"],
        summary=value["summary"],
        party=value["party"],
        sources=value["sources"] or (),
    )
    if new["kind"] not in flow.note_names:
        raise NotFound(
            f"unknown note kind {new['kind']!r} in workflow {flow.name!r}: "
            f"known: {', '.join(flow.note_names)}"
        )
    if new["party"] is not None:
        check_party(case, new["party"])
    return new
