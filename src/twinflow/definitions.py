"""Workflow definitions: YAML files checked against a JSON Schema and the rules of a sound
state machine, parsed into frozen value objects. Nothing else in twinflow opens these files."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinflow.errors import NotFound, WorkflowFileError

if TYPE_CHECKING:
    from transitions import Machine

SAME = "="  # a transition's dest that keeps the state
DECISION_FIELDS = ("body_name", "published_on", "scope", "vote", "reference", "reason", "sources")
YAML11_BOOLEANS = "y, yes, n, no, on, off, true, false"

Labels = Mapping[str, str]


def label(labels: Labels, lang: str, fallback: str) -> str:
    """The label in `lang`, else the English one, else the stable name."""
    return labels.get(lang) or labels.get("en") or fallback


@dataclass(frozen=True)
class Kind:
    """A kind of deciding body or of note."""

    name: str
    labels: Labels


@dataclass(frozen=True)
class State:
    name: str
    final: bool
    labels: Labels


@dataclass(frozen=True)
class Transition:
    """A decision (trigger) allowed from some states, taken by some body kinds."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    by: tuple[str, ...]
    requires: tuple[str, ...]
    labels: Labels
    noun: Labels


@dataclass(frozen=True)
class Workflow:
    """One version of a workflow, as validated; `document` is what the file said."""

    name: str
    version: int
    title: Labels
    initial: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    bodies: tuple[Kind, ...]
    notes: tuple[Kind, ...]
    open_by: tuple[str, ...]
    open_requires: tuple[str, ...]
    open_labels: Labels
    open_noun: Labels
    digest: str
    document: Mapping[str, Any] = field(repr=False, compare=False)

    @functools.cached_property
    def machine(self) -> Machine:
        """The transitions Machine for this version; used as a validator, never bound to cases."""
        from transitions import Machine

        return Machine(
            model=None,
            states=[s.name for s in self.states],
            initial=self.initial,
            auto_transitions=False,
            transitions=[
                {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest}
                for t in self.transitions
            ],
        )

    @functools.cached_property
    def _table(self) -> dict[tuple[str, str], str]:
        # Read (state, trigger) -> dest from the machine's own event table, so the rules the
        # machine enforces are the ones we apply, reflexive "=" transitions resolved by it.
        table: dict[tuple[str, str], str] = {}
        for trigger, event in self.machine.events.items():
            for source, candidates in event.transitions.items():
                table[(source, trigger)] = str(candidates[0].dest)
        return table

    def next_state(self, state: str, trigger: str) -> str | None:
        """The state `trigger` leads to from `state`, or None where it is not allowed."""
        return self._table.get((state, trigger))

    def allowed_triggers(self, state: str) -> list[str]:
        return [t.trigger for t in self.transitions if state in t.sources]

    def transition(self, trigger: str) -> Transition | None:
        return next((t for t in self.transitions if t.trigger == trigger), None)

    def state(self, name: str) -> State | None:
        return next((s for s in self.states if s.name == name), None)

    @property
    def trigger_names(self) -> list[str]:
        return list(dict.fromkeys(t.trigger for t in self.transitions))

    @property
    def body_names(self) -> list[str]:
        return [b.name for b in self.bodies]

    @property
    def note_names(self) -> list[str]:
        return [n.name for n in self.notes]

    def state_label(self, name: str | None, lang: str = "en") -> str:
        if name is None:
            return "-"
        found = self.state(name)
        return label(found.labels, lang, name) if found else name

    def trigger_label(self, trigger: str, lang: str = "en") -> str:
        if trigger == "open":
            return label(self.open_labels, lang, "open")
        found = self.transition(trigger)
        return label(found.labels, lang, trigger) if found else trigger

    def trigger_noun(self, trigger: str, lang: str = "en") -> str:
        if trigger == "open":
            return label(self.open_noun, lang, "opening")
        found = self.transition(trigger)
        return label(found.noun, lang, f"'{trigger}' decision") if found else trigger


@dataclass(frozen=True)
class Defect:
    """One thing wrong with a workflow file, with where it is and how to fix it."""

    file: str
    place: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.place}: {self.message}" if self.place else f"{where}: {self.message}"
        )


def digest_of(document: Mapping[str, Any]) -> str:
    """A digest of what a definition says, blind to comments, key order and layout."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@functools.cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((bundled_dir() / "workflow.schema.json").read_text())
    return loaded


def bundled_dir() -> Path:
    """The workflows shipped with twinflow: inside the wheel, or the source tree's folder."""
    inside = Path(__file__).parent / "workflows"
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parents[2] / "workflows"


# ---------------------------------------------------------------------------- checking


def check_document(
    document: Any, file: str, lines: Mapping[str, int] | None = None
) -> list[Defect]:
    """Every defect of a parsed YAML document: schema first, then the state machine's rules."""
    lines = lines or {}

    def defect(place: str, message: str) -> Defect:
        return Defect(file, place, message, _nearest_line(lines, place))

    if not isinstance(document, dict):
        return [defect("", "the file is not a YAML mapping: start with `name:`, `version:` ...")]

    defects = [defect(place, msg) for place, msg in _yaml11_boolean_keys(document)]
    if not defects:  # with boolean keys the schema's complaints would only repeat these
        import jsonschema

        validator = jsonschema.Draft202012Validator(_schema())
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
            defects.append(defect(_place(error.absolute_path), _schema_message(error)))
    # The machine's rules are checked even where the schema failed, so every defect of the
    # file is listed at once; they skip the values the schema already reported.
    return defects + [defect(place, msg) for place, msg in _machine_defects(document)]


def _yaml11_boolean_keys(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, bool):
                yield (
                    _place((*path, key)),
                    (
                        f"the key was read as the YAML 1.1 boolean {key} ({YAML11_BOOLEANS}): "
                        'quote it, e.g. "no":'
                    ),
                )
            yield from _yaml11_boolean_keys(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _yaml11_boolean_keys(item, (*path, index))


def _schema_message(error: Any) -> str:
    instance = error.instance
    if isinstance(instance, bool) and error.validator in {"type", "pattern", "anyOf", "enum"}:
        return (
            f"{str(instance).lower()} was read as a YAML 1.1 boolean ({YAML11_BOOLEANS}): "
            'quote the name, e.g. "on", or choose another'
        )
    if error.validator == "pattern" and isinstance(instance, str):
        return (
            f"{instance!r} is not a valid name: use lower-case letters, digits and _, "
            "starting with a letter"
        )
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{error.message}: add it"
    if error.validator == "enum":
        return f"{instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    return str(error.message)


def _dicts(items: Any) -> list[dict[Any, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _strings(items: Any) -> list[tuple[int, str]]:
    """The (index, value) of every string in a list; other values are the schema's to report."""
    if not isinstance(items, list):
        return []
    return [(i, v) for i, v in enumerate(items) if isinstance(v, str)]


def _machine_defects(doc: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    entries = {key: _dicts(doc.get(key)) for key in ("states", "bodies", "notes")}
    states = [s["name"] for s in entries["states"] if isinstance(s.get("name"), str)]
    final = {s.get("name") for s in entries["states"] if s.get("final") is True} & set(states)
    bodies = [b["name"] for b in entries["bodies"] if isinstance(b.get("name"), str)]
    initial = doc.get("initial")
    initial = initial if isinstance(initial, str) and initial in states else None

    def unknown(what: str, value: str, known: list[str]) -> str:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{value!r} is not a declared {what}: {hint}declared: {', '.join(known)}"

    for kind, items in entries.items():
        names: list[Any] = [i.get("name") for i in items]
        for index, name in enumerate(names):
            if isinstance(name, str) and name in names[:index]:
                yield f"{kind}[{index}].name", f"{name!r} is declared twice: remove one"
    if isinstance(doc.get("initial"), str) and states and initial is None:
        yield "initial", unknown("state", doc["initial"], states)
    elif initial in final:
        yield "initial", f"{initial!r} is final: a case could never leave it"
    opening = doc.get("open")
    for index, body in _strings(opening.get("by") if isinstance(opening, dict) else None):
        if bodies and body not in bodies:
            yield f"open.by[{index}]", unknown("body kind", body, bodies)

    seen: dict[tuple[str, str], int] = {}
    reserved = {"open", "note", "correct", "retract"}
    transitions = doc.get("transitions")
    transitions = transitions if isinstance(transitions, list) else []
    for index, t in enumerate(transitions):
        if not isinstance(t, dict):
            continue
        place = f"transitions[{index}]"
        trigger = t.get("trigger") if isinstance(t.get("trigger"), str) else None
        if trigger in reserved:
            yield (
                f"{place}.trigger",
                (f"{trigger!r} is a twinflow command, not a decision: choose another name"),
            )
        for s_index, source in _strings(t.get("source")):
            if states and source not in states:
                yield f"{place}.source[{s_index}]", unknown("state", source, states)
            elif source in final:
                yield (
                    f"{place}.source[{s_index}]",
                    (
                        f"{source!r} is final: no transition may leave it; remove it from source "
                        "or drop `final: true`"
                    ),
                )
            if trigger is None:
                continue
            key = (source, trigger)
            if key in seen:
                yield (
                    f"{place}.source[{s_index}]",
                    (
                        f"trigger {trigger!r} from {source!r} is already defined in "
                        f"transitions[{seen[key]}]: a decision must lead to one state; merge them"
                    ),
                )
            seen.setdefault(key, index)
        dest = t.get("dest")
        if isinstance(dest, str) and dest != SAME and states and dest not in states:
            yield f"{place}.dest", unknown("state", dest, states)
        for b_index, body in _strings(t.get("by")):
            if bodies and body not in bodies:
                yield f"{place}.by[{b_index}]", unknown("body kind", body, bodies)

    if initial is None:
        return
    edges = [
        {"source": [s for _, s in _strings(t.get("source"))], "dest": t.get("dest")}
        for t in _dicts(transitions)
    ]
    reachable = _reachable(initial, edges)
    for index, s in enumerate(entries["states"]):
        name = s.get("name")
        if isinstance(name, str) and name not in reachable:
            yield (
                f"states[{index}]",
                f"{name!r} cannot be reached from {initial!r}: add a transition to it or remove it",
            )


def _reachable(initial: str, transitions: Iterable[Mapping[str, Any]]) -> set[str]:
    reached, frontier = {initial}, [initial]
    while frontier:
        state = frontier.pop()
        for t in transitions:
            dest = state if t["dest"] == SAME else t["dest"]
            if state in t["source"] and dest not in reached:
                reached.add(dest)
                frontier.append(dest)
    return reached


def _place(path: Iterable[Any]) -> str:
    place = ""
    for part in path:
        place += f"[{part}]" if isinstance(part, int) else (f".{part}" if place else str(part))
    return place


def _nearest_line(lines: Mapping[str, int], place: str) -> int | None:
    while place:
        if place in lines:
            return lines[place]
        cut = max(place.rfind("."), place.rfind("["))
        place = place[:cut] if cut > 0 else ""
    return None


def _line_map(text: str) -> dict[str, int]:
    """Line numbers (1-based) of every place in the YAML text, for defect messages."""
    import yaml

    lines: dict[str, int] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        lines[_place(path)] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[_place((*path, key.value))] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


# ---------------------------------------------------------------------------- parsing


def read_file(path: Path) -> tuple[Any, list[Defect]]:
    """The YAML document of a file and its defects (file name, place and fix for each)."""
    import yaml

    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Defect(file, "", "no such file: check the path")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Defect(file, "", f"cannot be read ({exc}): save it as UTF-8 text")]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Defect(file, "", f"is not valid YAML: {problem}", line)]
    lines = _line_map(text)
    defects = check_document(document, file, lines)
    name = document.get("name") if isinstance(document, dict) else None
    if isinstance(name, str) and name != path.stem:
        defects.append(
            Defect(
                file,
                "name",
                f"{document['name']!r} differs from the file name: "
                f"rename the file to {document['name']}.yaml or fix `name`",
                lines.get("name"),
            )
        )
    return document, defects


def from_document(document: Mapping[str, Any]) -> Workflow:
    """Build the value object of an already checked document."""
    return _from_document(json.dumps(document, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _from_document(canonical: str) -> Workflow:
    doc: dict[str, Any] = json.loads(canonical)

    def kinds(items: list[dict[str, Any]]) -> tuple[Kind, ...]:
        return tuple(Kind(i["name"], i.get("labels", {})) for i in items)

    bodies = kinds(doc["bodies"])
    opening = doc.get("open", {})
    return Workflow(
        name=doc["name"],
        version=doc["version"],
        title=doc["title"],
        initial=doc["initial"],
        states=tuple(
            State(s["name"], bool(s.get("final")), s.get("labels", {})) for s in doc["states"]
        ),
        transitions=tuple(
            Transition(
                trigger=t["trigger"],
                sources=tuple(t["source"]),
                dest=t["dest"],
                by=tuple(t["by"]),
                requires=tuple(t.get("requires", [])),
                labels=t.get("labels", {}),
                noun=t.get("noun", {}),
            )
            for t in doc["transitions"]
        ),
        bodies=bodies,
        notes=kinds(doc.get("notes", [])),
        open_by=tuple(opening.get("by", [b.name for b in bodies])),
        open_requires=tuple(opening.get("requires", [])),
        open_labels=opening.get("labels", {}),
        open_noun=opening.get("noun", {}),
        digest=digest_of(doc),
        document=doc,
    )


def load_file(path: Path) -> Workflow:
    """Load one workflow file, raising WorkflowFileError that lists every defect."""
    document, defects = read_file(path)
    if defects:
        listing = "\n".join(f"  {d}" for d in defects)
        raise WorkflowFileError(
            f"workflow file {path} has {len(defects)} defect(s); fix them and try again:\n{listing}"
        )
    return from_document(document)


class Library:
    """The workflow files twinflow can use: the user's folders first, then the bundled ones."""

    def __init__(self, user_dirs: Iterable[Path | str] = ()) -> None:
        self.user_dirs = [Path(d) for d in user_dirs]
        self.dirs = [*self.user_dirs, bundled_dir()]

    @classmethod
    def from_env(cls, extra: str | None = None) -> Library:
        spec = extra if extra is not None else os.environ.get("TWINFLOW_WORKFLOWS", "")
        return cls([p for p in spec.split(os.pathsep) if p])

    def files(self) -> dict[str, Path]:
        """Workflow name -> the file that defines it (a user's file wins over a bundled one)."""
        found: dict[str, Path] = {}
        for folder in reversed(self.dirs):
            if folder.is_dir():
                for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
                    found[path.stem] = path
        return found

    def get(self, name: str) -> Workflow:
        path = self.files().get(name)
        if path is None:
            known = ", ".join(sorted(self.files())) or "none"
            raise NotFound(
                f"unknown workflow {name!r}: known workflows: {known} "
                "(add a folder of your own with --workflows DIR)"
            )
        stat = path.stat()
        return _load_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _load_cached(path: Path, mtime_ns: int, size: int) -> Workflow:
    return load_file(path)
