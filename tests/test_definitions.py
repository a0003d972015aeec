"""Workflow definitions: the bundled twinning workflow, `workflows validate` listing every
defect of every file, and a folder of the user's own that wins over the bundled files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow.cli import cli
from twinflow.definitions import Library, bundled_dir, digest_of, load_file, read_file
from twinflow.errors import NotFound, WorkflowFileError

FIXTURES = Path(__file__).parent / "fixtures" / "workflows"
INVALID = FIXTURES / "invalid"
BUNDLED = bundled_dir() / "twinning.yaml"
BOOLEAN = (
    "was read as a YAML 1.1 boolean (y, yes, n, no, on, off, true, false): quote the name, "
    'e.g. "on", or choose another'
)


def twinflow(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


# ---------------------------------------------------------------- the bundled workflow


def test_the_bundled_twinning_workflow_is_valid() -> None:
    result = twinflow("workflows", "validate", str(BUNDLED))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{BUNDLED}: valid\n"
    assert result.stderr == ""


def test_the_twinning_workflow_has_the_states_decisions_and_bodies_of_the_issue() -> None:
    flow = Library().get("twinning")
    assert (flow.name, flow.version, flow.initial) == ("twinning", 1, "active")
    assert [(s.name, s.final) for s in flow.states] == [
        ("active", False),
        ("dormant", False),
        ("suspended", False),
        ("frozen", False),
        ("ended", True),
    ]
    alive = ("active", "dormant", "suspended", "frozen")
    assert {t.trigger: (t.sources, t.dest) for t in flow.transitions} == {
        "suspend": (("active", "dormant", "suspended"), "suspended"),
        "freeze": (alive, "frozen"),
        "make_dormant": (("active",), "dormant"),
        "resume": (("dormant", "suspended", "frozen"), "active"),
        "end": (alive, "ended"),
        "reaffirm": (alive, "="),
    }
    deciders = ("council", "executive", "committee", "mayor")
    assert {t.trigger: t.by for t in flow.transitions} == {
        **{t: deciders for t in ("suspend", "freeze", "make_dormant", "resume", "reaffirm")},
        "end": ("council", "executive", "committee", "association"),
    }
    assert {t.trigger for t in flow.transitions if t.requires == ("reason",)} == {"freeze", "end"}
    assert flow.body_names == ["council", "executive", "committee", "mayor", "association"]
    assert flow.note_names == ["visit", "letter", "statement", "other"]
    for labelled in (*flow.states, *flow.transitions, *flow.bodies, *flow.notes):
        assert set(labelled.labels) == {"en", "nl"}
    assert set(flow.title) == {"en", "nl"}


def test_the_machine_is_a_validator_without_auto_transitions() -> None:
    flow = Library().get("twinning")
    assert flow.next_state("active", "reaffirm") == "active"
    assert flow.next_state("frozen", "reaffirm") == "frozen"
    assert flow.next_state("suspended", "suspend") == "suspended"
    assert flow.next_state("ended", "resume") is None
    assert flow.next_state("active", "to_ended") is None  # no auto transition bypasses rules
    assert flow.allowed_triggers("ended") == []


def test_the_digest_is_blind_to_comments_and_layout(tmp_path: Path) -> None:
    copy = tmp_path / "twinning.yaml"
    copy.write_text(
        "# a comment of the clerk's\n"
        + BUNDLED.read_text().replace(
            "labels: {en: active, nl: actief}", "labels:\n      nl: actief\n      en: active"
        )
    )
    assert load_file(copy).digest == load_file(BUNDLED).digest
    document, _ = read_file(BUNDLED)
    assert load_file(BUNDLED).digest == digest_of(document)


def test_workflows_show_lists_states_decisions_and_bodies_in_dutch_too() -> None:
    result = twinflow("--lang", "nl", "workflows", "show", "twinning")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("twinning v1: Stedenband\n")
    assert "bevroren" in result.stdout and "gemeenteraad" in result.stdout
    shown = json.loads(twinflow("workflows", "show", "twinning", "--format", "json").stdout)
    assert shown["digest"] == Library().get("twinning").digest
    assert [s["name"] for s in shown["states"]][-1] == "ended"


def test_an_unknown_workflow_is_refused_naming_the_known_ones() -> None:
    result = twinflow("workflows", "show", "twining")
    assert result.exit_code == 1
    known = ", ".join(sorted(Library().files()))
    assert "twinning" in known
    assert error_lines(result) == [
        f"Error: unknown workflow 'twining': known workflows: {known} (add a folder of your "
        "own with --workflows DIR)"
    ]
    with pytest.raises(NotFound):
        Library().get("twining")


# ---------------------------------------------------------------- validate: every defect


def at(name: str, line: int | None, place: str, message: str) -> str:
    where = f"{INVALID / name}:{line}" if line else f"{INVALID / name}"
    return f"Error: {where}: {place}: {message}" if place else f"Error: {where}: {message}"


EXPECTED = {
    "booleans.yaml": [
        at("booleans.yaml", 13, "transitions[0].trigger", f"true {BOOLEAN}"),
        at("booleans.yaml", 18, "transitions[1].source[0]", f"false {BOOLEAN}"),
    ],
    "initial.yaml": [
        at(
            "initial.yaml",
            5,
            "initial",
            "'actve' is not a declared state: did you mean 'active'? declared: active, ended",
        ),
    ],
    "machine.yaml": [
        at(
            "machine.yaml",
            18,
            "transitions[0].dest",
            "'suspendd' is not a declared state: did you mean 'suspended'? declared: active, "
            "suspended, orphan, ended",
        ),
        at(
            "machine.yaml",
            21,
            "transitions[1].source[0]",
            "'paused' is not a declared state: declared: active, suspended, orphan, ended",
        ),
        at(
            "machine.yaml",
            25,
            "transitions[2].source[0]",
            "'ended' is final: no transition may leave it; remove it from source or drop "
            "`final: true`",
        ),
        at(
            "machine.yaml",
            29,
            "transitions[3].source[0]",
            "trigger 'suspend' from 'active' is already defined in transitions[0]: a decision "
            "must lead to one state; merge them",
        ),
        at(
            "machine.yaml",
            35,
            "transitions[4].by[0]",
            "'counsil' is not a declared body kind: did you mean 'council'? declared: council, "
            "executive",
        ),
        at(
            "machine.yaml",
            8,
            "states[1]",
            "'suspended' cannot be reached from 'active': add a transition to it or remove it",
        ),
        at(
            "machine.yaml",
            9,
            "states[2]",
            "'orphan' cannot be reached from 'active': add a transition to it or remove it",
        ),
    ],
    "malformed.yaml": [
        at("malformed.yaml", 5, "", "is not valid YAML: found unexpected end of stream"),
    ],
    "mixed.yaml": [
        at("mixed.yaml", 13, "transitions[0].trigger", f"false {BOOLEAN}"),
        at(
            "mixed.yaml",
            5,
            "initial",
            "'activ' is not a declared state: did you mean 'active'? declared: active, ended",
        ),
    ],
    "renamed.yaml": [
        at(
            "renamed.yaml",
            11,
            "transitions[0]",
            "Additional properties are not allowed ('needs' was unexpected); allowed keys: by, "
            "description, dest, labels, noun, requires, source, trigger",
        ),
        at(
            "renamed.yaml",
            2,
            "name",
            "'other' differs from the file name: rename the file to other.yaml or fix `name`",
        ),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_names_the_file_the_line_the_place_and_the_fix(name: str) -> None:
    result = twinflow("workflows", "validate", str(INVALID / name))
    assert result.exit_code == 1
    assert error_lines(result) == EXPECTED[name]
    assert result.stderr.splitlines()[-1] == "1 of 1 file(s) have defects"
    assert result.stdout == ""


def test_validate_lists_every_defect_of_every_file_and_the_valid_ones() -> None:
    files = [INVALID / name for name in sorted(EXPECTED)]
    result = twinflow("workflows", "validate", str(BUNDLED), *map(str, files))
    assert result.exit_code == 1
    assert error_lines(result) == [line for name in sorted(EXPECTED) for line in EXPECTED[name]]
    assert result.stdout == f"{BUNDLED}: valid\n"
    assert (
        result.stderr.splitlines()[-1] == f"{len(files)} of {len(files) + 1} file(s) have defects"
    )
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_a_defect_too(tmp_path: Path) -> None:
    result = twinflow("workflows", "validate", str(tmp_path / "nothere.yaml"), str(BUNDLED))
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"Error: {tmp_path / 'nothere.yaml'}: no such file: check the path"
    ]


def test_every_defect_kind_the_issue_names_is_caught() -> None:
    messages = " ".join(line for lines in EXPECTED.values() for line in lines)
    for symptom in (
        "is not a declared state: did you mean 'active'",  # misspelled initial
        "'suspendd' is not a declared state",  # transition to an undeclared state
        "'paused' is not a declared state",  # transition from an undeclared state
        "is final: no transition may leave it",
        "cannot be reached from",
        "is already defined in transitions[0]",
        "YAML 1.1 boolean",
        "is not a declared body kind",
    ):
        assert symptom in messages


# ---------------------------------------------------------------- the user's own folder


def test_a_folder_of_ones_own_wins_over_a_bundled_file_of_the_same_name() -> None:
    folder = FIXTURES / "valid"
    listed = json.loads(
        twinflow("--workflows", str(folder), "workflows", "list", "--format", "json").stdout
    )
    assert [(w["version"], w["file"]) for w in listed if w["name"] == "twinning"] == [
        (7, str(folder / "twinning.yaml"))
    ]
    shown = twinflow("--workflows", str(folder), "workflows", "show", "twinning")
    assert shown.stdout.startswith("twinning v7: Municipal twinning (local rules)\n")
    bundled = json.loads(twinflow("workflows", "list", "--format", "json").stdout)
    assert [(w["version"], w["file"]) for w in bundled if w["name"] == "twinning"] == [
        (1, str(BUNDLED))
    ]


def test_the_environment_names_the_folder_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINFLOW_WORKFLOWS", str(FIXTURES / "valid"))
    assert Library.from_env().get("twinning").version == 7
    assert Library.from_env(str(FIXTURES / "valid")).get("twinning").version == 7


def test_a_case_opened_with_ones_own_workflow_is_judged_by_it(run: Invoke) -> None:
    folder = str(FIXTURES / "valid")
    opened = run(
        "--workflows",
        folder,
        "open",
        "coevorden-brest",
        "--workflow",
        "twinning",
        "--title",
        "Twinning",
        "--party",
        "Coevorden",
        "--party",
        "Brest",
        "--by",
        "council",
        "--on",
        "2000",
    )
    assert opened.exit_code == 0, opened.stderr
    assert opened.stdout == "opened coevorden-brest (#1): twinning v7, active from 2000\n"
    refused = run(
        "--workflows",
        folder,
        "decide",
        "coevorden-brest",
        "suspend",
        "--party",
        "Brest",
        "--by",
        "executive",
        "--on",
        "2022",
    )
    assert refused.exit_code == 1
    assert error_lines(refused) == [
        "Error: body kind 'executive' may not suspend a 'twinning' case: allowed: council"
    ]
    # Without the folder the stored v7 still judges the case, not the bundled v1.
    again = run(
        "decide",
        "coevorden-brest",
        "suspend",
        "--party",
        "Brest",
        "--by",
        "executive",
        "--on",
        "2022",
    )
    assert again.exit_code == 1
    assert error_lines(again) == error_lines(refused)
    status = json.loads(run("status", "coevorden-brest", "--format", "json").stdout)
    assert (status["workflow"], status["version"]) == ("twinning", 7)


def test_an_invalid_file_in_ones_folder_is_refused_when_used(tmp_path: Path, run: Invoke) -> None:
    shutil.copy(INVALID / "initial.yaml", tmp_path / "initial.yaml")
    result = run(
        "--workflows",
        str(tmp_path),
        "open",
        "x",
        "--workflow",
        "initial",
        "--title",
        "X",
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"Error: workflow file {tmp_path / 'initial.yaml'} has 1 defect(s); fix them and try again:"
    ]
    assert (
        f"{tmp_path / 'initial.yaml'}:5: initial: 'actve' is not a declared state" in result.stderr
    )
    with pytest.raises(WorkflowFileError):
        load_file(tmp_path / "initial.yaml")
