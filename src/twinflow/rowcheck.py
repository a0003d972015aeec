"""The checks a row of an import file allows on its own (a case name, an action, dates, the
cells each kind of row needs and those it has no place for), and the row as the case checks
need it: the decision or note in the shape `open`, `decide` and `note` record."""

from __future__ import annotations

import re
from typing import Any

from twinflow.dates import DATE_HELP, PartialDate, parse_date
from twinflow.decisions import decision_fields, note_fields
from twinflow.domain import SLUG
from twinflow.errors import InvalidInput
from twinflow.exchange import Problem
from twinflow.spill import Spill

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
OPEN_ONLY = ("title", "parties")
DECISION_ONLY = (
    "by",
    "body_name",
    "effective_on",
    "published_on",
    "scope",
    "vote",
    "reference",
    "reason",
)
# The cells each kind of row needs.
NEEDED = {
    "open": ("workflow", "title", "by"),
    "decision": ("by", "party"),
    "note": ("summary",),
}
Cells = dict[str, Any]
# Parsed dates by their text: an archive repeats a few hundred dates over many rows.
DATES: dict[str, PartialDate] = {}
KEEP_DATES = 100_000


def date_of(text: str, column: str) -> PartialDate:
    found = DATES.get(text)
    if found is None:
        found = parse_date(text, column)
        if len(DATES) < KEEP_DATES:
            DATES[text] = found
    return found


def check(line: int, cells: Cells, spill: Spill, problems: list[Problem]) -> None:
    """Check what a row can tell on its own, and spill it (marked broken if it failed)."""
    found: list[Problem] = []

    def bad(column: str, value: Any, reason: str) -> None:
        found.append(Problem(line, column, None if value is None else str(value), reason))

    case = cells.get("case")
    if case is None:
        bad("case", None, "is empty: give the case's short name, e.g. coevorden-brest")
    elif not SLUG.match(case):
        bad("case", case, "is not a case name: use lower-case letters, digits and hyphens")
    action = cells.get("action")
    kind = _kind(action, bad)
    dates: dict[str, PartialDate] = {}
    for column in ("decided_on", "effective_on", "published_on"):
        text = cells.get(column)
        if text is not None:
            try:
                dates[column] = date_of(text, column)
            except InvalidInput as error:
                bad(column, text, str(error).removeprefix(f"{column} {text!r} "))
    if "decided_on" not in cells:
        what = "when it happened" if kind == "note" else "when it was decided"
        bad("decided_on", None, f"is empty: give {what}: {DATE_HELP}")
    parties = _parties(cells.get("parties"), bad) if kind == "open" else []
    _check_columns(kind, cells, bad)

    if case is None:
        problems.extend(found)
        return
    row: dict[str, Any] = {"kind": kind}
    date = dates.get("effective_on") or dates.get("decided_on")
    if not found:
        row = _row(kind, action or "", cells, parties)
    else:
        problems.extend(found)
    spill.add_row(
        case,
        opening=kind == "open",
        start=date.start.toordinal() if date else 0,
        line=line,
        broken=bool(found),
        row=row,
    )


def _kind(action: str | None, bad: Any) -> str:
    if action is None:
        bad(
            "action",
            None,
            "is empty: give open, a decision of the case's workflow (e.g. suspend) or "
            "note:KIND (e.g. note:visit)",
        )
        return "unknown"
    if action == "open":
        return "open"
    if action.startswith("note:"):
        if not NAME.match(action[5:]):
            bad("action", action, "does not name a note kind: write note:KIND, e.g. note:visit")
        return "note"
    if not NAME.match(action):
        bad("action", action, "is not open, a decision (e.g. suspend) or note:KIND")
        return "unknown"
    return "decision"


def _parties(value: Any, bad: Any) -> list[str]:
    if value is None:
        bad("parties", None, "is empty: an open row names the parties, separated by ;")
        return []
    names = value if isinstance(value, list) else [p.strip() for p in value.split(";")]
    names = [n for n in names if n]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        bad("parties", "; ".join(names), f"names {', '.join(twice)} twice: name each once")
    return names


def _check_columns(kind: str, cells: Cells, bad: Any) -> None:
    """Required cells per kind of row, and cells a kind of row has no place for."""
    for column in NEEDED.get(kind, ()):
        if column not in cells:
            bad(column, None, f"is empty: a{'n' if kind == 'open' else ''} {kind} row needs it")
    if kind != "open":
        for column in OPEN_ONLY:
            if column in cells:
                bad(column, _text(cells[column]), "is only used on an open row: leave it empty")
    if kind == "note":
        for column in DECISION_ONLY:
            if column in cells:
                bad(
                    column,
                    cells[column],
                    "is not used on a note row: leave it empty, or say it in summary",
                )
    elif "summary" in cells and kind != "unknown":
        bad("summary", cells["summary"], "is only used on a note row: put it in reason")


def _text(value: Any) -> str:
    return "; ".join(value) if isinstance(value, list) else str(value)


def _sources(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else value.split()


def _row(kind: str, action: str, cells: Cells, parties: list[str]) -> dict[str, Any]:
    """What the case checks and the event builder need of a good row."""
    sources = _sources(cells.get("source"))
    if kind == "note":
        values = note_fields(
            action[5:],
            on=cells["decided_on"],
            summary=cells["summary"],
            party=cells.get("party"),
            sources=sources,
        )
    else:
        values = decision_fields(
            "open" if kind == "open" else action,
            by=cells["by"],
            party=cells.get("party"),
            on=cells["decided_on"],
            effective=cells.get("effective_on"),
            published=cells.get("published_on"),
            body_name=cells.get("body_name"),
            scope=cells.get("scope"),
            vote=cells.get("vote"),
            reason=cells.get("reason"),
            reference=cells.get("reference"),
            sources=sources,
        )
    row: dict[str, Any] = {"kind": kind, "values": values, "workflow": cells.get("workflow")}
    if kind == "open":
        row["title"] = cells["title"]
        row["parties"] = parties
    return row
