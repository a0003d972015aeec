"""Warnings about a workflow file that loads but is probably not what its author meant: a
non-final state no decision leads out of, a decision no body kind may take, and a state that
can only be reached through a final one. `workflows validate` shows them; `--strict` fails."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from twinflow.definitions import SAME, Defect, _line_map, _nearest_line


def lint_file(path: Path) -> list[Defect]:
    """The warnings for a workflow file; none where it cannot even be read as YAML."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # read_file reports these as errors
    return lint_document(document, str(path), _line_map(text))


def lint_document(document: Any, file: str, lines: Mapping[str, int] | None = None) -> list[Defect]:
    lines = lines or {}
    if not isinstance(document, dict):
        return []
    return [
        Defect(file, place, message, _nearest_line(lines, place))
        for place, message in _warnings(document)
    ]


def _warnings(doc: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    states = [s for s in _list(doc.get("states")) if isinstance(s, dict)]
    names = [s.get("name") for s in states]
    final = {str(s["name"]) for s in states if s.get("final") is True and "name" in s}
    edges = _edges(doc)

    for index, state in enumerate(states):
        name = state.get("name")
        if name in final or not isinstance(name, str):
            continue
        if not any(source == name and dest != name for source, dest in edges):
            yield (
                f"states[{index}]",
                f"{name!r} is not final, but no decision leads out of it: a case there is "
                "stuck; add a transition from it, or mark it `final: true`",
            )

    opening = doc.get("open")
    if isinstance(opening, dict) and opening.get("by") == []:
        yield "open.by", "no body kind may open a case (`by` is empty): list the kinds that may"
    for index, t in enumerate(_list(doc.get("transitions"))):
        if isinstance(t, dict) and t.get("by") == []:
            yield (
                f"transitions[{index}].by",
                f"no body kind may take {t.get('trigger')!r} (its `by` is empty): list the "
                "kinds of body that may, or remove the decision",
            )

    initial = doc.get("initial")
    if not isinstance(initial, str) or initial not in names:
        return
    anyhow = _reachable(initial, edges, final, through_final=True)
    properly = _reachable(initial, edges, final, through_final=False)
    for index, name in enumerate(names):
        if name in anyhow and name not in properly:
            gates = sorted(
                f for f in final & anyhow if name in _reachable(f, edges, final, through_final=True)
            )
            yield (
                f"states[{index}]",
                f"{name!r} can only be reached through the final state "
                f"{' or '.join(map(repr, gates))}, which no decision may leave: a case never "
                "gets there; drop `final: true` there, or add another way in",
            )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _edges(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, dest) of every transition, "=" resolved to the source."""
    edges = []
    for t in _list(doc.get("transitions")):
        if not isinstance(t, dict) or not isinstance(t.get("dest"), str):
            continue
        for source in _list(t.get("source")):
            if isinstance(source, str):
                edges.append((source, source if t["dest"] == SAME else t["dest"]))
    return edges


def _reachable(
    start: str, edges: list[tuple[str, str]], final: set[str], *, through_final: bool
) -> set[str]:
    reached, frontier = {start}, [start]
    while frontier:
        state = frontier.pop()
        if state in final and not through_final and state != start:
            continue
        for source, dest in edges:
            if source == state and dest not in reached:
                reached.add(dest)
                frontier.append(dest)
    return reached
