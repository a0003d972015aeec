"""Diagrams: mermaid through transitions' mermaid engine, dot as text, svg and png through
graphviz's `dot` where installed (a clear error where not), and a case's path marked."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow import demo
from twinflow.cli import cli
from twinflow.definitions import Library
from twinflow.diagrams import Passage, render

NO_DOT = (
    "graphviz's `dot` program, which is not on PATH: install graphviz (Debian/Ubuntu: apt-get "
    "install graphviz; macOS: brew install graphviz; Windows: winget install graphviz; or see "
    "https://graphviz.org/download/); or use --format mermaid or --format dot"
)


def twinflow(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_mermaid_shows_every_state_and_decision_with_its_labels() -> None:
    result = twinflow("workflows", "diagram", "twinning")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["---", 'title: "twinning v1: Municipal twinning"', "---",
                         "stateDiagram-v2"]
    for expected in ('state "active" as active', 'state "frozen" as frozen',
                     "ended --> [*]", "[*] --> active",
                     "active --> dormant: make dormant",
                     "suspended --> suspended: suspend | reaffirm",
                     "frozen --> ended: end"):
        assert f"  {expected}" in lines
    # nothing is marked on a workflow's own diagram
    assert [line for line in lines if line.startswith("  Class ")] == [
        f"  Class {s} s_default" for s in ("active", "dormant", "suspended", "frozen", "ended")
    ]
    assert "note" not in result.stdout


def test_mermaid_labels_follow_the_language() -> None:
    result = twinflow("--lang", "nl", "workflows", "diagram", "twinning")
    assert 'title: "twinning v1: Stedenband"' in result.stdout
    assert '  state "bevroren" as frozen' in result.stdout.splitlines()
    assert "  active --> suspended: opschorten" in result.stdout.splitlines()


def test_the_shared_machine_stays_unbound() -> None:
    flow = Library().get("twinning")
    render(flow, "mermaid", path=[Passage(None, "active", "2000")])
    render(flow, "dot")
    assert flow.machine.models == []


def test_dot_is_text_with_the_path_coloured() -> None:
    flow = Library().get("twinning")
    text = render(flow, "dot", path=[Passage(None, "active", "2000"),
                                     Passage("active", "suspended", "2022")])
    assert isinstance(text, str)
    assert text.startswith('digraph "twinning v1: Municipal twinning" {')
    assert "\tactive -> suspended [label=suspend color=blue]\n" in text
    assert "\tactive -> frozen [label=freeze]\n" in text
    assert '\tsuspended [label="suspended\\l" color=red fillcolor=darksalmon' in text


def path_without_dot(tmp_path: Path) -> str:
    """A PATH that holds no `dot`, whatever this machine has installed."""
    folder = tmp_path / "bin"
    folder.mkdir()
    return str(folder)


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_svg_and_png_without_graphviz_say_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setenv("PATH", path_without_dot(tmp_path))
    target = tmp_path / f"twinning.{fmt}"
    result = twinflow("workflows", "diagram", "twinning", "--format", fmt, "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr == f"Error: the {fmt} format needs {NO_DOT}\n"
    assert result.stdout == ""
    assert not target.exists()


def test_svg_is_what_graphviz_draws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `dot` records the graph it was given and answers with an svg."""
    folder = Path(path_without_dot(tmp_path))
    fake = folder / "dot"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/graph\n'
                    "echo '<svg>drawn</svg>'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    result = twinflow("workflows", "diagram", "twinning", "--format", "svg")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == b"<svg>drawn</svg>\n"
    assert (tmp_path / "args").read_text().split() == ["-Kdot", "-Tsvg"]
    assert (tmp_path / "graph").read_text() == render(Library().get("twinning"), "dot") + "\n"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_graphviz_draws_a_real_svg_and_png(tmp_path: Path) -> None:
    svg = twinflow("--lang", "nl", "workflows", "diagram", "grant", "--format", "svg")
    assert svg.exit_code == 0, svg.stderr
    assert b"<svg" in svg.stdout_bytes and b"weigering herroepen" in svg.stdout_bytes
    target = tmp_path / "grant.png"
    png = twinflow("workflows", "diagram", "grant", "--format", "png", "-o", str(target))
    assert png.exit_code == 0, png.stderr
    assert target.read_bytes().startswith(b"\x89PNG")
    assert png.stderr == f"wrote the png diagram of grant v1 to {target}\n"


def test_an_unknown_format_is_a_usage_error() -> None:
    result = twinflow("workflows", "diagram", "twinning", "--format", "jpeg")
    assert result.exit_code == 2
    assert "'jpeg' is not one of 'mermaid', 'dot', 'svg', 'png'" in result.stderr


def test_an_older_version_is_drawn_from_the_register(run: Invoke) -> None:
    assert run("open", "coevorden-brest", "--workflow", "twinning", "--title", "T", "--party",
               "Coevorden", "--by", "council", "--on", "2000").exit_code == 0
    folder = str(Path(__file__).parent / "fixtures" / "workflows" / "versions")
    old = run("--workflows", folder, "workflows", "diagram", "twinning", "--version", "1")
    new = run("--workflows", folder, "workflows", "diagram", "twinning")
    assert old.exit_code == 0, old.stderr
    assert "paused" not in old.stdout and "frozen --> active: resume" in old.stdout
    assert 'title: "twinning v2: Municipal twinning"' in new.stdout
    assert "  paused --> active: resume" in new.stdout.splitlines()


# ---------------------------------------------------------------- a case's diagram


def story(run: Invoke, db: str) -> None:
    from twinflow.application import Register

    register = Register.at(db)
    try:
        demo.record(register)
    finally:
        register.close()


def classes(text: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[2] for line in text.splitlines()
            if line.startswith("  Class ")}


def test_status_diagram_marks_the_current_state_and_the_path_taken(run: Invoke,
                                                                   db: str) -> None:
    story(run, db)
    result = run("status", demo.CASE, "--diagram")
    assert result.exit_code == 0, result.stderr
    assert classes(result.stdout) == {
        "active": "s_previous", "dormant": "s_default", "suspended": "s_previous",
        "frozen": "s_active", "ended": "s_default",
    }
    assert result.stdout.splitlines()[-1] == (
        "  note right of frozen : 2000 active → 2022 suspended → 2024-03 frozen"
    )


def test_status_diagram_on_an_earlier_date_stops_there(run: Invoke, db: str) -> None:
    story(run, db)
    result = run("--lang", "nl", "status", demo.CASE, "--diagram", "--as-of", "2021")
    assert classes(result.stdout) == {
        "active": "s_active", "dormant": "s_default", "suspended": "s_default",
        "frozen": "s_default", "ended": "s_default",
    }
    assert result.stdout.splitlines()[-1] == "  note right of active : 2000 actief"


def test_status_diagram_is_mermaid_only(run: Invoke, db: str) -> None:
    story(run, db)
    result = run("status", demo.CASE, "--diagram", "--format", "json")
    assert result.exit_code == 2
    assert result.stderr == "Error: --diagram draws mermaid text: leave out --format json\n"
