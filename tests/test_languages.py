"""Labels per language: every bundled workflow speaks English and Dutch; `--lang` and
TWINFLOW_LANG put the labels in every human-readable output while JSON and CSV keep the
stable names; an unknown language is a usage error naming the ones there are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import Invoke
from twinflow import demo
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.definitions import Library
from twinflow.languages import languages

FR = (
    "Error: no labels in language 'fr': workflow 'twinning' v1 has en, nl; give --lang en or "
    "--lang nl (or TWINFLOW_LANG), or add labels in that language to the workflow file\n"
)


@pytest.mark.parametrize("name", ["twinning", "motion", "grant"])
def test_every_bundled_workflow_has_english_and_dutch_labels_for_everything(name: str) -> None:
    flow = Library().get(name)
    groups = [flow.title, flow.open_labels, flow.open_noun]
    groups += [s.labels for s in flow.states]
    groups += [t.labels for t in flow.transitions] + [t.noun for t in flow.transitions]
    groups += [k.labels for k in (*flow.bodies, *flow.notes)]
    assert all(set(labels) == {"en", "nl"} for labels in groups)
    assert languages([flow]) == ["en", "nl"]


def test_the_examples_of_the_issue() -> None:
    flow = Library().get("twinning")
    assert flow.state_label("frozen", "nl") == "bevroren"
    assert flow.state_label("suspended", "nl") == "opgeschort"


def recorded(db: str) -> None:
    register = Register.at(db)
    try:
        demo.record(register)
    finally:
        register.close()


def stored(db: str) -> int:
    register = Register.at(db)
    try:
        return len(register.events.recorder.select_notifications(start=None, limit=10_000))
    finally:
        register.close()


def test_history_speaks_dutch_in_the_table_and_stable_names_in_json_and_csv(
        run: Invoke, db: str) -> None:
    recorded(db)
    table = run("--lang", "nl", "history", demo.CASE)
    assert table.exit_code == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[2].split()[:4] == ["1", "2000", "opened", "aangaan"]
    assert "gemeenteraad" in rows[2] and "actief" in rows[2]
    assert "bezoek" in rows[3]
    assert "opschorten" in rows[6] and "college van B&W" in rows[6] and "opgeschort" in rows[6]
    assert "bevriezen" in rows[7] and "bevroren" in rows[7]
    plain = json.loads(run("history", demo.CASE, "--format", "json").stdout)
    assert json.loads(run("--lang", "nl", "history", demo.CASE, "--format", "json").stdout) \
        == plain
    assert [r["state_after"] for r in plain][-1] == "frozen"
    csv = run("--lang", "nl", "history", demo.CASE, "--format", "csv").stdout
    assert csv == run("history", demo.CASE, "--format", "csv").stdout
    assert "bevroren" not in csv and ",frozen," in csv


def test_the_environment_chooses_the_language_for_status_and_list(
        run: Invoke, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded(db)
    monkeypatch.setenv("TWINFLOW_LANG", "nl")
    status = run("status", demo.CASE, "--as-of", "2022-06-01")
    assert status.stdout.splitlines()[0] == (
        "coevorden-brest: opgeschort (uncertain: actief or opgeschort) since 2022 (#5)"
    )
    listed = run("list")
    assert listed.stdout.splitlines()[2].split()[:2] == ["coevorden-brest", "bevroren"]
    as_json: list[dict[str, Any]] = json.loads(run("list", "--format", "json").stdout)
    assert as_json[0]["state"] == "frozen"
    assert json.loads(run("status", demo.CASE, "--format", "json").stdout)["state"] == "frozen"


def test_decide_open_and_note_confirm_in_the_language(run: Invoke) -> None:
    opened = run("--lang", "nl", "open", "coevorden-brest", "--workflow", "twinning",
                 "--title", "T", "--party", "Coevorden", "--by", "council", "--on", "2000")
    assert opened.stdout == "opened coevorden-brest (#1): twinning v1, actief from 2000\n"
    noted = run("--lang", "nl", "note", "coevorden-brest", "visit", "--on", "2019",
                "--summary", "Bezoek")
    assert noted.stdout == "noted bezoek on coevorden-brest (#2) on 2019\n"
    decided = run("--lang", "nl", "decide", "coevorden-brest", "suspend", "--party",
                  "Coevorden", "--by", "council", "--on", "2022")
    assert decided.stdout == "recorded suspend on coevorden-brest (#3), effective 2022: " \
                             "actief -> opgeschort\n"


def test_workflows_list_and_show_speak_the_language() -> None:
    listed = CliRunner().invoke(cli, ["--lang", "nl", "workflows", "list"]).stdout
    titles = {line.split()[0]: line for line in listed.splitlines()[2:]}
    assert "Stedenband" in titles["twinning"] and "Motie" in titles["motion"]
    assert "Subsidiebeschikking" in titles["grant"]
    shown = CliRunner().invoke(cli, ["--lang", "nl", "workflows", "show", "grant"]).stdout
    assert shown.startswith("grant v1: Subsidiebeschikking\n")
    assert "weigering herroepen" in shown and "bezwaar maken" in shown


def test_the_demo_replays_in_the_language(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--lang", "nl", "demo", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 0, result.stderr
    assert "opschorten" in result.stdout and "bevroren" in result.stdout
    assert "status as of 2021-06-01: actief" in result.stdout.splitlines()


def test_an_unknown_language_is_refused_naming_the_known_ones(run: Invoke, db: str) -> None:
    recorded(db)
    for args in (("status", demo.CASE), ("history", demo.CASE),
                 ("workflows", "show", "twinning"), ("workflows", "diagram", "twinning"),
                 ("status", demo.CASE, "--diagram")):
        result = run("--lang", "fr", *args)
        assert (result.exit_code, result.stderr, result.stdout) == (2, FR, ""), args


def test_an_unknown_language_writes_nothing(run: Invoke, db: str, tmp_path: Path) -> None:
    recorded(db)
    before = stored(db)
    result = run("--lang", "fr", "decide", demo.CASE, "reaffirm", "--party", "Coevorden",
                 "--by", "council", "--on", "2025")
    assert (result.exit_code, result.stderr) == (2, FR)
    result = run("--lang", "fr", "note", demo.CASE, "visit", "--on", "2025", "--summary", "x")
    assert (result.exit_code, result.stderr) == (2, FR)
    assert stored(db) == before
    demo_db = tmp_path / "demo.db"
    refused = CliRunner().invoke(cli, ["--lang", "fr", "demo", "--db", str(demo_db)])
    assert (refused.exit_code, refused.stderr) == (2, FR)
    assert not demo_db.exists()


def test_listing_checks_the_language_against_every_workflow(run: Invoke, db: str) -> None:
    recorded(db)
    result = run("--lang", "de", "list")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: no labels in language 'de': the workflows have en, nl; give --lang en or "
        "--lang nl (or TWINFLOW_LANG), or add labels in that language to the workflow file\n"
    )
