"""Workflow versions: the file holds the current version, every version a case used stays in
the register's store, and `workflows show --version` and `workflows diff` find either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.definitions import bundled_dir

V2 = Path(__file__).parent / "fixtures" / "workflows" / "versions"
BUNDLED = bundled_dir() / "twinning.yaml"


def open_case(run: Invoke, slug: str, *extra: str) -> None:
    result = run(*extra, "open", slug, "--workflow", "twinning", "--title", "Twinning",
                 "--party", "Coevorden", "--party", "Brest", "--by", "council", "--on", "2000")
    assert result.exit_code == 0, result.stderr


def test_every_version_a_case_used_stays_in_the_store(run: Invoke, db: str) -> None:
    open_case(run, "coevorden-brest")  # the bundled v1
    open_case(run, "coevorden-lingen", "--workflows", str(V2))  # the folder's v2
    register = Register.at(db, str(V2))
    try:
        assert register.stored_versions("twinning") == [1, 2]
        assert register.stored_versions("motion") == []
        assert register.stored_workflow("twinning", 1).digest != register.stored_workflow(
            "twinning", 2).digest
    finally:
        register.close()


def test_show_finds_an_older_version_in_the_register(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    shown = run("--workflows", str(V2), "workflows", "show", "twinning", "--version", "1")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "twinning v1: Municipal twinning"
    assert lines[2] == "from the register's store"
    assert "paused" not in shown.stdout
    current = run("--workflows", str(V2), "workflows", "show", "twinning")
    assert current.stdout.splitlines()[0] == "twinning v2: Municipal twinning"
    assert current.stdout.splitlines()[2] == f"from the file {V2 / 'twinning.yaml'}"
    assert "paused" in current.stdout
    as_json = json.loads(run("--workflows", str(V2), "workflows", "show", "twinning",
                             "--version", "1", "--format", "json").stdout)
    assert (as_json["version"], as_json["digest"]) == (1, json.loads(
        run("workflows", "show", "twinning", "--format", "json").stdout)["digest"])


def test_a_version_nobody_holds_is_refused_naming_those_that_exist(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    result = run("--workflows", str(V2), "workflows", "show", "twinning", "--version", "5")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: workflow 'twinning' has no version 5: the file {V2 / 'twinning.yaml'} holds "
        "v2; the register holds v1\n"
    )
    assert result.stdout == ""


def test_an_older_version_without_a_register_says_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(cli, ["--db", str(missing), "--workflows", str(V2), "workflows",
                                      "show", "twinning", "--version", "1"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: workflow 'twinning' v1 is not in the workflow files (the file "
        f"{V2 / 'twinning.yaml'} holds v2), and the register that would store it cannot be "
        f"read: no register at '{missing}': record something first (twinflow open ...), or "
        "point --db / TWINFLOW_DB at your register\n"
    )
    assert not missing.exists()


def test_show_without_a_version_needs_no_register(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "workflows", "show",
                                      "twinning"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("twinning v1: Municipal twinning\n")
    assert not (tmp_path / "none.db").exists()


def diff(run: Invoke, *args: str) -> Result:
    return run("--workflows", str(V2), "workflows", "diff", "twinning", *args)


def test_diff_names_states_decisions_authority_and_requirements(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    result = diff(run, "1", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "twinning v1 -> v2: 10 difference(s)",
        "+ state paused",
        "- authority make_dormant (make dormant): executive",
        "- authority make_dormant (make dormant): committee",
        "- authority make_dormant (make dormant): mayor",
        "+ source resume: paused",
        "- source resume: frozen",
        "+ source end: paused",
        "+ requirement end: reference",
        "+ decision pause: active -> paused; by council, executive",
        "+ note meeting",
    ]


def test_diff_backwards_removes_what_forwards_adds(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    forwards = json.loads(diff(run, "1", "2", "--format", "json").stdout)
    backwards = json.loads(diff(run, "2", "1", "--format", "json").stdout)
    flip = {"added": "removed", "removed": "added"}
    assert sorted((flip[d["change"]], d["what"], d["name"], d["value"]) for d in forwards
                  if d["what"] != "decision") == sorted(
        (d["change"], d["what"], d["name"], d["value"]) for d in backwards
        if d["what"] != "decision")
    assert {"change": "removed", "what": "decision", "name": "pause",
            "value": "active -> paused; by council, executive"} in backwards


def test_diff_of_a_version_with_itself_is_empty(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    result = diff(run, "2", "2")
    assert result.stdout == "twinning v2 -> v2: 0 difference(s)\n"


def test_diff_labels_follow_the_language(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    result = run("--lang", "nl", "--workflows", str(V2), "workflows", "diff", "twinning", "1",
                 "2")
    assert result.stdout.splitlines()[1:3] == [
        "+ state paused (gepauzeerd)",
        "- authority make_dormant (slapend maken): executive",
    ]


def test_diff_needs_whole_version_numbers(run: Invoke) -> None:
    result = diff(run, "1", "two")
    assert result.exit_code == 2
    assert "'two' is not a valid integer" in result.stderr


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_changed_file_with_an_unchanged_version_is_still_refused(run: Invoke, tmp_path: Path,
                                                                   version: str) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    text = (V2 / "twinning.yaml").read_text() if version == "2" else BUNDLED.read_text()
    (folder / "twinning.yaml").write_text(text)
    open_case(run, "coevorden-brest", "--workflows", str(folder))
    (folder / "twinning.yaml").write_text(text.replace("{en: frozen, nl: bevroren}",
                                                       "{en: frozen solid, nl: bevroren}"))
    result = run("--workflows", str(folder), "migrate", "coevorden-brest", "--to", version,
                 "--reason", "test")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: workflow file {folder / 'twinning.yaml'} changed since version {version} was "
        f"first used by a case, but its version is still {version}: bump `version` to "
        f"{int(version) + 1} (cases stay on the version they were opened with), or undo the "
        "change\n"
    )
