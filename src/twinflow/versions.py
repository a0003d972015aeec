"""What changed between two versions of a workflow: states, decisions, which body kinds may
take them (authority) and the fields they require, added or removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from twinflow.definitions import SAME, Workflow

OPENING = "(opening)"


@dataclass(frozen=True)
class Difference:
    """One thing added to, removed from or changed in the later version."""

    change: str  # added | removed | changed
    what: str  # initial | state | final | decision | source | destination | authority | ...
    name: str  # the state, decision, body kind or note kind concerned
    value: str  # what was added, removed or changed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff(old: Workflow, new: Workflow) -> list[Difference]:
    """The differences from `old` to `new`, states first, then decisions and their rules."""
    found: list[Difference] = []
    if old.initial != new.initial:
        moved = f"{old.initial} -> {new.initial}"
        found.append(Difference("changed", "initial", new.initial, moved))
    found += _named("state", [s.name for s in old.states], [s.name for s in new.states])
    both = [s.name for s in new.states if old.state(s.name) is not None]
    old_final = [name for name in both if _final(old, name)]
    new_final = [name for name in both if _final(new, name)]
    found += [Difference("added", "final", n, "final") for n in new_final if n not in old_final]
    found += [Difference("removed", "final", n, "final") for n in old_final if n not in new_final]

    old_moves, new_moves = _moves(old), _moves(new)
    for trigger in _union(old.trigger_names, new.trigger_names):
        if trigger not in old_moves:
            found.append(Difference("added", "decision", trigger, _summary(new, trigger)))
            continue
        if trigger not in new_moves:
            found.append(Difference("removed", "decision", trigger, _summary(old, trigger)))
            continue
        before, after = old_moves[trigger], new_moves[trigger]
        found += _set("source", trigger, before, after)
        found += [
            Difference("changed", "destination", trigger, f"from {s}: {before[s]} -> {after[s]}")
            for s in before
            if s in after and before[s] != after[s]
        ]
        found += _rules(trigger, _rules_of(old, trigger), _rules_of(new, trigger))

    found += _rules(OPENING, (old.open_by, old.open_requires), (new.open_by, new.open_requires))
    found += _named("body", old.body_names, new.body_names)
    found += _named("note", old.note_names, new.note_names)
    return found


def _final(flow: Workflow, name: str) -> bool:
    state = flow.state(name)
    return state is not None and state.final


def _union(first: Iterable[str], second: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _named(what: str, old: list[str], new: list[str]) -> list[Difference]:
    return [Difference("added", what, n, n) for n in new if n not in old] + [
        Difference("removed", what, n, n) for n in old if n not in new
    ]


def _set(what: str, name: str, old: Iterable[str], new: Iterable[str]) -> list[Difference]:
    before, after = list(old), list(new)
    return [Difference("added", what, name, v) for v in after if v not in before] + [
        Difference("removed", what, name, v) for v in before if v not in after
    ]


def _moves(flow: Workflow) -> dict[str, dict[str, str]]:
    """trigger -> {source: dest}, "=" spelled as the state it keeps."""
    moves: dict[str, dict[str, str]] = {}
    for t in flow.transitions:
        for source in t.sources:
            moves.setdefault(t.trigger, {})[source] = source if t.dest == SAME else t.dest
    return moves


def _rules_of(flow: Workflow, trigger: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    by: list[str] = []
    requires: list[str] = []
    for t in flow.transitions:
        if t.trigger == trigger:
            by += [b for b in t.by if b not in by]
            requires += [r for r in t.requires if r not in requires]
    return tuple(by), tuple(requires)


def _rules(
    name: str,
    old: tuple[tuple[str, ...], tuple[str, ...]],
    new: tuple[tuple[str, ...], tuple[str, ...]],
) -> list[Difference]:
    return _set("authority", name, old[0], new[0]) + _set("requirement", name, old[1], new[1])


def _summary(flow: Workflow, trigger: str) -> str:
    moves = _moves(flow)[trigger]
    by, requires = _rules_of(flow, trigger)
    text = ", ".join(f"{s} -> {d}" for s, d in moves.items()) + f"; by {', '.join(by) or 'none'}"
    return text + (f"; requires {', '.join(requires)}" if requires else "")
