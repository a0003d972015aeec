"""Labels in the reader's language for human-readable output. Tables and messages show the
labels of states, decisions, bodies and note kinds; JSON and CSV keep the stable names that
programs and imports rely on. An unknown language code is an error naming the known ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from twinflow.definitions import Kind, Library, Workflow, label
from twinflow.errors import InvalidInput, TwinflowError

DEFAULT = "en"  # the schema requires an English label wherever there are labels


def languages(flows: Iterable[Workflow]) -> list[str]:
    """Every language the workflows carry a label in, English first."""
    found: set[str] = set()
    for flow in flows:
        groups: list[Mapping[str, str]] = [flow.title, flow.open_labels, flow.open_noun]
        groups += [s.labels for s in flow.states]
        groups += [t.labels for t in flow.transitions] + [t.noun for t in flow.transitions]
        groups += [k.labels for k in (*flow.bodies, *flow.notes)]
        for labels in groups:
            found.update(labels)
    return sorted(found | {DEFAULT}, key=lambda code: (code != DEFAULT, code))


def check(lang: str, flows: Sequence[Workflow]) -> str:
    """`lang` where the workflows have labels in it, else InvalidInput listing theirs.

    An error rather than a quiet fall-back to English: a mistyped code (`--lang NL`, `du`)
    should not pass for a language the register has no words in."""
    known = languages(flows)
    if lang in known:
        return lang
    which = (
        f"workflow {flows[0].name!r} v{flows[0].version} has"
        if len(flows) == 1
        else "the workflows have"
    )
    _refuse(lang, which, known)


def check_library(lang: str, library: Library) -> str:
    """`lang` where some workflow file in the library has labels in it (checked before a
    command records anything, so a mistyped code never follows a write)."""
    if lang == DEFAULT:
        return lang
    flows = []
    for name in library.files():
        try:
            flows.append(library.get(name))
        except TwinflowError:
            continue  # a broken file is reported by the command that uses it
    if lang in languages(flows):
        return lang
    _refuse(lang, "the workflows have", languages(flows))


def _refuse(lang: str, which: str, known: list[str]) -> NoReturn:
    options = " or ".join(f"--lang {code}" for code in known)
    raise InvalidInput(
        f"no labels in language {lang!r}: {which} {', '.join(known)}; give {options} "
        "(or TWINFLOW_LANG), or add labels in that language to the workflow file"
    )


def kind_label(kinds: Iterable[Kind], name: str | None, lang: str) -> str | None:
    """The label of a body or note kind, its name where the workflow does not know it."""
    if name is None:
        return None
    found = next((k for k in kinds if k.name == name), None)
    return label(found.labels, lang, name) if found else name


def history_table(
    rows: Sequence[Mapping[str, Any]], flow: Workflow, lang: str
) -> list[dict[str, Any]]:
    """History rows with states, decisions, bodies and note kinds as labels."""
    shown = []
    for row in rows:
        row = dict(row)
        if row["kind"] == "noted":
            row["trigger"] = kind_label(flow.notes, row["trigger"], lang)
        elif row.get("trigger"):
            row["trigger"] = flow.trigger_label(row["trigger"], lang)
        row["body"] = kind_label(flow.bodies, row.get("body"), lang)
        for key in ("state_before", "state_after"):
            if row.get(key):
                row[key] = flow.state_label(row[key], lang)
        shown.append(row)
    return shown


def cases_table(
    rows: Sequence[Mapping[str, Any]], lookup: Callable[[str, int], Workflow], lang: str
) -> list[dict[str, Any]]:
    """Listed cases with their state as a label of the workflow version each follows."""
    flows: dict[tuple[str, int], Workflow] = {}
    shown = []
    for row in rows:
        row = dict(row)
        key = (row["workflow"], row["version"])
        if key not in flows:
            flows[key] = lookup(*key)
        # a case not yet opened on the date asked about reads as `status` says it
        row["state"] = flows[key].state_label(row["state"], lang) if row["state"] else "not open"
        shown.append(row)
    return shown
