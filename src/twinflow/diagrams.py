"""Pictures of a workflow version, drawn by transitions' diagram support: mermaid (its mermaid
engine, no graphviz needed), graphviz dot source, and svg or png rendered by graphviz's `dot`
program where it is installed. A case's diagram marks its current state and its path."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transitions.extensions.diagrams import HierarchicalGraphMachine
from transitions.extensions.nesting import NestedState

from twinflow.definitions import Workflow, label
from twinflow.errors import MissingProgram

FORMATS = ("mermaid", "dot", "svg", "png")
INSTALL_GRAPHVIZ = (
    "install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "Windows: winget install graphviz; or see https://graphviz.org/download/)"
)


@dataclass(frozen=True)
class Passage:
    """One decision on a case's path: the state before (None for the opening), after, when."""

    before: str | None
    after: str
    date: str


class _LabelledState(NestedState):
    # No workflow name holds a dot, so the nesting separator never splits `make_dormant`.
    separator = "."

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label = label


class _Machine(HierarchicalGraphMachine):
    """The hierarchical graph machine draws final states; ours are flat and labelled."""

    state_cls = _LabelledState


def render(
    flow: Workflow, fmt: str = "mermaid", lang: str = "en", path: Sequence[Passage] = ()
) -> str | bytes:
    """The diagram of `flow` in `fmt`; with a case's `path`, its states are marked."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    if fmt == "mermaid":
        return _mermaid(flow, lang, path)
    graph = _graph(
        flow,
        "graphviz",
        lang,
        path,
        f"{flow.name} v{flow.version}: {label(flow.title, lang, flow.name)}",
    )
    if fmt == "dot":
        return str(graph.source).rstrip("\n")
    return _draw(graph, fmt)


def _mermaid(flow: Workflow, lang: str, path: Sequence[Passage]) -> str:
    title = f"{flow.name} v{flow.version}: {label(flow.title, lang, flow.name)}"
    # transitions writes the title between the front-matter fences as it is; mermaid reads
    # that block as YAML, so it is given as a quoted `title:` entry.
    graph = _graph(flow, "mermaid", lang, path, f"title: {_quoted(title)}")
    lines = str(graph.source).rstrip("\n").split("\n")
    if path:
        # The mermaid engine cannot colour edges, so the path taken is also spelled out.
        taken = " → ".join(f"{p.date} {flow.state_label(p.after, lang)}" for p in path)
        lines.append(f"  note right of {path[-1].after} : {_escaped(taken)}")
    return "\n".join(lines)


def _graph(
    flow: Workflow,
    engine: Literal["graphviz", "mermaid"],
    lang: str,
    path: Sequence[Passage],
    title: str,
) -> Any:
    escape = _escaped if engine == "mermaid" else str
    model = type("Diagram", (), {})()  # a throwaway model: the shared machine stays unbound
    machine = _Machine(
        model=model,
        states=[
            {"name": s.name, "label": escape(label(s.labels, lang, s.name)), "final": s.final}
            for s in flow.states
        ],
        transitions=[
            {
                "trigger": t.trigger,
                "source": list(t.sources),
                "dest": t.dest,
                "label": escape(label(t.labels, lang, t.trigger)),
            }
            for t in flow.transitions
        ],
        initial=flow.initial,
        auto_transitions=False,
        graph_engine=engine,
        title=title,
    )
    graph = machine.model_graphs[id(model)]
    graph.reset_styling()  # the model sits in the initial state; only a case's path is marked
    for passage in path:
        if passage.before is not None:
            graph.set_previous_transition(passage.before, passage.after)
        graph.set_node_style(passage.after, "previous")
    if path:
        graph.set_node_style(path[-1].after, "active")
    return model.get_graph()


def _draw(graph: Any, fmt: str) -> bytes:
    if shutil.which("dot") is None:
        raise MissingProgram(
            f"the {fmt} format needs graphviz's `dot` program, which is not on PATH: "
            f"{INSTALL_GRAPHVIZ}; or use --format mermaid or --format dot"
        )
    import graphviz  # type: ignore[import-untyped]

    try:
        return bytes(graph.pipe(format=fmt))
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as error:
        raise MissingProgram(
            f"graphviz's `dot` could not draw the {fmt}: {error}; {INSTALL_GRAPHVIZ}"
        ) from None


def _escaped(text: str) -> str:
    """Text safe inside a mermaid label: quotes and line breaks would end it."""
    return text.replace('"', "#quot;").replace("\n", " ")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
