"""`twinflow audit`: what was recorded, by whom and when, across all cases, from a read model."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import Invoke
from twinflow.application import Register
from twinflow.cli import cli


def record(run: Invoke) -> None:
    """Two cases, three clerks: clerk-a (TWINFLOW_ACTOR), clerk-b and clerk-c (--actor)."""
    for args in (
        ("open", "coevorden-brest", "--workflow", "twinning", "--title", "C–B", "--party",
         "Coevorden", "--party", "Brest", "--by", "council", "--on", "2000"),
        ("--actor", "clerk-b", "open", "coevorden-gryfino", "--workflow", "twinning", "--title",
         "C–G", "--party", "Coevorden", "--party", "Gryfino", "--by", "council", "--on", "1996"),
        ("decide", "coevorden-brest", "suspend", "--party", "Brest", "--by", "executive", "--on",
         "2022"),
        ("--actor", "clerk-b", "note", "coevorden-gryfino", "visit", "--on", "2019",
         "--summary", "A visit"),
        ("--actor", "clerk-c", "correct", "coevorden-brest", "2", "--effective", "2022-03",
         "--why", "the minutes"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.stderr


def audit(run: Invoke, *args: str) -> list[dict[str, Any]]:
    result = run("audit", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def who(row: dict[str, Any]) -> str:
    """The clerk: on PostgreSQL the database role records on behalf of --actor."""
    return str(row["on_behalf_of"] or row["actor"])


def test_audit_lists_every_event_of_every_case_newest_last(run: Invoke) -> None:
    record(run)
    rows = audit(run)
    assert [(r["case"], r["seq"], r["kind"], who(r)) for r in rows] == [
        ("coevorden-brest", 1, "opened", "clerk-a"),
        ("coevorden-gryfino", 1, "opened", "clerk-b"),
        ("coevorden-brest", 2, "decided", "clerk-a"),
        ("coevorden-gryfino", 2, "noted", "clerk-b"),
        ("coevorden-brest", 3, "corrected", "clerk-c"),
    ]
    assert rows[-1]["detail"] == "corrected #2 (effective_on): the minutes"
    positions = [r["position"] for r in rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    stamps = [dt.datetime.fromisoformat(r["recorded_at"]) for r in rows]
    assert stamps == sorted(stamps)


def test_audit_filters_by_actor_case_and_recording_time(run: Invoke) -> None:
    record(run)
    everything = audit(run)
    assert [(r["case"], r["seq"]) for r in audit(run, "--actor", "clerk-b")] == [
        ("coevorden-gryfino", 1), ("coevorden-gryfino", 2)]
    assert [r["seq"] for r in audit(run, "--case", "coevorden-brest")] == [1, 2, 3]
    assert [(r["case"], r["seq"]) for r in audit(run, "--case", "coevorden-brest", "--actor",
                                                 "clerk-c")] == [("coevorden-brest", 3)]
    second, fourth = everything[1]["recorded_at"], everything[3]["recorded_at"]
    window = audit(run, "--since", second, "--until", fourth)
    assert [r["position"] for r in window] == [r["position"] for r in everything[1:4]]
    assert audit(run, "--since", everything[-1]["recorded_at"]) == everything[-1:]
    today = dt.datetime.now(dt.UTC).date()
    assert audit(run, "--since", today.isoformat()) == everything  # a plain date: from 00:00
    assert audit(run, "--until", (today - dt.timedelta(days=1)).isoformat()) == []


def test_audit_as_table_and_csv(run: Invoke) -> None:
    record(run)
    table = run("audit", "--actor", "clerk-c")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["position", "recorded", "at", "actor", "on", "behalf", "of",
                                "case", "seq", "kind", "detail"]
    assert len(lines) == 3 and "corrected #2 (effective_on): the minutes" in lines[2]
    rows = list(csv.DictReader(io.StringIO(run("audit", "--format", "csv").stdout)))
    assert [(r["case"], r["seq"], r["kind"]) for r in rows][-1] == (
        "coevorden-brest", "3", "corrected")
    nothing = run("audit", "--actor", "nobody")
    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (
        0, "", "no recorded events match\n")


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--since", "2025-01-02", "--until", "2025-01-01"), 2,
     "Error: --since 2025-01-02 is after --until 2025-01-01: give the earlier moment as "
     "--since\n"),
    (("--case", "coevorden-paris"), 1,
     "Error: unknown case 'coevorden-paris': see `twinflow list` for the cases, or open it "
     "with `twinflow open coevorden-paris ...`\n"),
    (("--case", "Not A Slug"), 2,
     "Error: case 'Not A Slug' is not a valid name: use lower-case letters, digits and "
     "hyphens, e.g. coevorden-brest\n"),
])
def test_bad_audit_filters_are_refused(run: Invoke, args: tuple[str, ...], code: int,
                                       message: str) -> None:
    record(run)
    result = run("audit", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (code, "", message)


def test_a_malformed_timestamp_is_a_usage_error(run: Invoke) -> None:
    record(run)
    result = run("audit", "--since", "2024-03-14T09:30:00")
    assert result.exit_code == 2
    assert "Invalid value for '--since': '2024-03-14T09:30:00' has no time zone" in result.stderr


def test_audit_is_answered_from_the_read_model_without_loading_cases(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    register.open_case("a-b", workflow="twinning", title="A–B", parties=["A", "B"],
                       by="council", on="2000", actor="clerk-a")
    register.note("a-b", "visit", on="2001", summary="visit", actor="clerk-b")
    first = register.audit()

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("audit loaded a case")

    monkeypatch.setattr(register.events.repository, "get", no_loading)
    assert register.audit() == first
    assert [who(r) for r in register.audit(actor="clerk-b")] == ["clerk-b"]
    monkeypatch.undo()
    register.views.rebuild()
    assert register.audit() == first


def test_the_actor_defaults_to_the_os_user(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINFLOW_ACTOR", raising=False)
    db = str(tmp_path / "register.db")
    result = CliRunner().invoke(cli, ["--db", db, "open", "a-b", "--workflow", "twinning",
                                      "--title", "A–B", "--party", "A", "--by", "council",
                                      "--on", "2000"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(CliRunner().invoke(cli, ["--db", db, "audit", "--format", "json"]).stdout)
    assert [r["actor"] for r in rows] == [getpass.getuser()]
