"""`twinflow migrate`: a case moves to another version of its workflow only where its whole
timeline is a legal path there; the move is an event, history is never rewritten, and status
answers by the version in force at the moment asked about."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Invoke
from twinflow import migration, timeline
from twinflow.application import Register
from twinflow.definitions import from_document, read_file

V2 = str(Path(__file__).parent / "fixtures" / "workflows" / "versions")
PARTIES = ("--party", "Coevorden", "--party", "Brest")


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result


def open_case(run: Invoke, slug: str) -> None:
    ok(run("open", slug, "--workflow", "twinning", "--title", "Twinning", *PARTIES, "--by",
           "council", "--on", "2000"))


def decide(run: Invoke, slug: str, trigger: str, *args: str) -> Any:
    return run("decide", slug, trigger, "--party", "Coevorden", *args)


def the_story(run: Invoke) -> None:
    """Coevorden–Brest on v1: legal in v2 too."""
    open_case(run, "coevorden-brest")
    ok(run("note", "coevorden-brest", "visit", "--on", "2019", "--summary", "A visit"))
    ok(run("decide", "coevorden-brest", "suspend", "--party", "Brest", "--by", "executive",
           "--on", "2022"))
    ok(decide(run, "coevorden-brest", "freeze", "--by", "executive", "--on", "2024-03",
              "--reason", "formal contacts stop"))


def events(db: str) -> list[tuple[str, int, str]]:
    """Every stored event, in the global order: what the store holds."""
    register = Register.at(db)
    try:
        found = register.events.recorder.select_notifications(start=None, limit=10_000)
        return [(str(n.originator_id), n.originator_version, n.topic) for n in found]
    finally:
        register.close()


def json_of(run: Invoke, *args: str) -> Any:
    return json.loads(ok(run(*args, "--format", "json")).stdout)


# ---------------------------------------------------------------- one case


def test_a_case_migrates_as_an_event_and_history_stays_as_it_was(run: Invoke, db: str) -> None:
    the_story(run)
    before = json_of(run, "history", "coevorden-brest")
    stored = events(db)
    result = ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason",
                    "the council adopted twinning v2"))
    assert result.stdout == "migrated coevorden-brest (#5): twinning v1 -> v2\n"
    after = events(db)
    assert after[: len(stored)] == stored  # nothing before it changed
    assert [topic for _, _, topic in after[len(stored):]] == [
        "twinflow:workflow:registered",  # v2 stored with the case, in the same save
        "twinflow:case:migrated",
    ]
    history = json_of(run, "history", "coevorden-brest")
    assert history[: len(before)] == before  # the decisions and notes read as they did
    assert [(row["seq"], row["kind"], row["trigger"]) for row in history[len(before):]] == [
        (5, "migrated", "twinning v1 -> v2")
    ]
    register = Register.at(db)
    try:
        entry = register.get_case("coevorden-brest").entries[-1]
        # On PostgreSQL the database role records, for the clerk named by TWINFLOW_ACTOR.
        clerk = entry.data.get("on_behalf_of") or entry.actor
        assert (entry.seq, entry.kind, clerk) == (5, "migrated", "clerk-a")
        v1, v2 = register.stored_workflow("twinning", 1), register.stored_workflow("twinning", 2)
        assert {k: entry.data[k] for k in ("from_version", "from_digest", "to_version",
                                           "to_digest", "reason")} == {
            "from_version": 1, "from_digest": v1.digest, "to_version": 2,
            "to_digest": v2.digest, "reason": "the council adopted twinning v2",
        }
        assert register.verify(case="coevorden-brest")["holds"] is True
    finally:
        register.close()
    status = json_of(run, "status", "coevorden-brest")
    assert (status["version"], status["state"]) == (2, "frozen")


def test_decisions_after_the_migration_are_judged_by_the_new_version(run: Invoke) -> None:
    open_case(run, "coevorden-brest")
    refused = decide(run, "coevorden-brest", "pause", "--by", "council", "--on", "2010")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: unknown decision 'pause' in workflow 'twinning' v1")
    ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2"))
    paused = ok(run("--workflows", V2, "decide", "coevorden-brest", "pause", "--party",
                    "Coevorden", "--by", "council", "--on", "2010"))
    assert paused.stdout == "recorded pause on coevorden-brest (#3), effective 2010: " \
                            "active -> paused\n"
    # Without the folder too: the case is judged by the stored v2, not the bundled v1 file.
    ok(decide(run, "coevorden-brest", "end", "--by", "council", "--on", "2012", "--reason",
              "no contacts", "--ref", "2012/7"))
    assert json_of(run, "status", "coevorden-brest", "--as-of", "2011")["state"] == "paused"


def test_status_known_at_before_the_migration_answers_by_the_old_version(run: Invoke,
                                                                         db: str) -> None:
    the_story(run)
    held = json_of(run, "history", "coevorden-brest")[-1]["recorded_at"]
    ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2"))
    then = json_of(run, "status", "coevorden-brest", "--known-at", held)
    now = json_of(run, "status", "coevorden-brest")
    assert (then["version"], then["state"]) == (1, "frozen")
    assert (now["version"], now["state"]) == (2, "frozen")
    # v2 no longer resumes a frozen twinning: the old version may, the new one may not
    assert timeline_allows(db, "coevorden-brest", held, "resume") == (1, True)
    assert timeline_allows(db, "coevorden-brest", None, "resume") == (2, False)


def timeline_allows(db: str, slug: str, known_at: str | None, trigger: str) -> tuple[int, bool]:
    register = Register.at(db)
    try:
        flow = register.workflow_at(slug, known_at)
        case = register.get_case(slug)
        steps = timeline.path(timeline.in_force(case.entries), flow)
        return flow.version, flow.next_state(steps[-1].after, trigger) is not None
    finally:
        register.close()


def test_a_history_that_is_no_legal_path_is_refused_naming_the_decision(run: Invoke,
                                                                       db: str) -> None:
    open_case(run, "coevorden-brest")
    ok(decide(run, "coevorden-brest", "freeze", "--by", "council", "--on", "2022", "--reason",
              "elections"))
    ok(decide(run, "coevorden-brest", "resume", "--by", "council", "--on", "2023"))
    stored = events(db)
    result = run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot migrate case 'coevorden-brest' to twinning v2: decision #3 'resume' "
        "(effective 2023) is not allowed in twinning v2: the case would be 'frozen' since 2022 "
        "(#2); allowed from 'frozen': freeze, end, reaffirm; correct or retract that event "
        "first, or choose another version\n"
    )
    assert result.stdout == ""
    assert events(db) == stored


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("make_dormant", "--by", "executive", "--on", "2010"),
         "decision #2 'make_dormant' (effective 2010) was taken by body kind 'executive', which "
         "may not make_dormant in twinning v2 (allowed: council)"),
        (("end", "--by", "council", "--on", "2010", "--reason", "no contacts"),
         "decision #2 'end' (effective 2010) lacks reference, which twinning v2 requires to end"),
    ],
)
def test_authority_and_requirements_of_the_new_version_apply_to_old_decisions(
        run: Invoke, db: str, args: tuple[str, ...], why: str) -> None:
    open_case(run, "coevorden-brest")
    ok(decide(run, "coevorden-brest", *args))
    stored = events(db)
    result = run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot migrate case 'coevorden-brest' to twinning v2: {why}; correct or "
        "retract that event first, or choose another version\n"
    )
    assert events(db) == stored


def test_migrating_back_is_another_event(run: Invoke) -> None:
    the_story(run)
    ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2"))
    back = ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "1", "--reason",
                  "v2 was adopted too early"))
    assert back.stdout == "migrated coevorden-brest (#6): twinning v2 -> v1\n"
    assert json_of(run, "status", "coevorden-brest")["version"] == 1
    again = run("migrate", "coevorden-brest", "--to", "1", "--reason", "twice")
    assert again.exit_code == 1
    assert again.stderr == "Error: case 'coevorden-brest' is already on twinning v1: nothing " \
                           "to do\n"


def test_a_migration_cannot_be_corrected_or_retracted(run: Invoke) -> None:
    the_story(run)
    ok(run("--workflows", V2, "migrate", "coevorden-brest", "--to", "2", "--reason", "v2"))
    result = run("retract", "coevorden-brest", "5", "--why", "oops")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: #5 of case 'coevorden-brest' is a migration (to v2): it cannot be retracted; "
        "to go back, `twinflow migrate coevorden-brest --to 1 --reason ...`\n"
    )


def test_an_unknown_version_is_refused(run: Invoke, db: str) -> None:
    the_story(run)
    stored = events(db)
    result = run("migrate", "coevorden-brest", "--to", "3", "--reason", "v3")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: workflow 'twinning' has no version 3: the file ")
    assert result.stderr.endswith("twinning.yaml holds v1; the register holds v1\n")
    assert events(db) == stored


# ---------------------------------------------------------------- every case of a workflow


def three_cases(run: Invoke) -> None:
    the_story(run)  # migrates
    open_case(run, "coevorden-lingen")
    ok(decide(run, "coevorden-lingen", "make_dormant", "--by", "mayor", "--on", "2015"))
    open_case(run, "coevorden-nowa-sol")  # migrates


def test_dry_run_reports_every_case_and_changes_nothing(run: Invoke, db: str) -> None:
    three_cases(run)
    stored = events(db)
    result = run("--workflows", V2, "migrate", "--workflow", "twinning", "--to", "2", "--all",
                 "--dry-run")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "would migrate coevorden-brest: twinning v1 -> v2",
        "cannot migrate coevorden-lingen: twinning v1 -> v2: decision #2 'make_dormant' "
        "(effective 2015) was taken by body kind 'mayor', which may not make_dormant in "
        "twinning v2 (allowed: council)",
        "would migrate coevorden-nowa-sol: twinning v1 -> v2",
    ]
    assert result.stderr == (
        "Error: 1 of 3 twinning case(s) cannot migrate to v2; correct or retract the events "
        "named above, or choose another version\n"
    )
    assert events(db) == stored
    reports = json.loads(run("--workflows", V2, "migrate", "--workflow", "twinning", "--to",
                             "2", "--all", "--dry-run", "--format", "json").stdout)
    assert [(r["case"], r["outcome"]) for r in reports] == [
        ("coevorden-brest", "migrates"), ("coevorden-lingen", "cannot"),
        ("coevorden-nowa-sol", "migrates"),
    ]


def test_all_cases_move_or_none_does(run: Invoke, db: str) -> None:
    three_cases(run)
    stored = events(db)
    refused = run("--workflows", V2, "migrate", "--workflow", "twinning", "--to", "2", "--all",
                  "--reason", "v2")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: 1 of 3 twinning case(s) cannot migrate to v2, so none was migrated; the first, "
        "'coevorden-lingen': decision #2 'make_dormant' (effective 2015) was taken by body kind "
        "'mayor', which may not make_dormant in twinning v2 (allowed: council); see every case "
        "with `twinflow migrate --workflow twinning --to 2 --all --dry-run`\n"
    )
    assert events(db) == stored
    ok(run("retract", "coevorden-lingen", "2", "--why", "the mayor cannot decide this"))
    done = ok(run("--workflows", V2, "migrate", "--workflow", "twinning", "--to", "2", "--all",
                  "--reason", "v2"))
    assert done.stdout.splitlines() == [
        "migrated coevorden-brest (#5): twinning v1 -> v2",
        "migrated coevorden-lingen (#4): twinning v1 -> v2",
        "migrated coevorden-nowa-sol (#2): twinning v1 -> v2",
    ]
    listed = json_of(run, "list")
    assert {(c["case"], c["version"]) for c in listed} == {
        ("coevorden-brest", 2), ("coevorden-lingen", 2), ("coevorden-nowa-sol", 2)}
    again = ok(run("--workflows", V2, "migrate", "--workflow", "twinning", "--to", "2",
                   "--all", "--dry-run"))
    assert again.stdout.splitlines()[0] == "coevorden-brest: already on twinning v2"


def test_a_workflow_without_cases_has_nothing_to_migrate(run: Invoke) -> None:
    the_story(run)
    result = ok(run("migrate", "--workflow", "motion", "--to", "1", "--all", "--dry-run"))
    assert (result.stdout, result.stderr) == ("", "no motion cases to migrate\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "2"), "give a CASE to migrate, or --workflow NAME --all to migrate every "
                        "case of a workflow"),
        (("coevorden-brest", "--to", "2", "--all"), "give either a CASE or --workflow NAME "
         "--all, not both: a case migrates within its own workflow"),
        (("--to", "2", "--all"), "--all needs --workflow NAME: the workflow whose cases "
                                 "migrate"),
        (("coevorden-brest", "--to", "2"), "a migration needs a reason: give --reason, e.g. "
                                           "'v2 adds the pause decision'"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(run: Invoke, db: str, args: tuple[str, ...],
                                               message: str) -> None:
    the_story(run)
    stored = events(db)
    result = run("--workflows", V2, "migrate", *args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert events(db) == stored


# ---------------------------------------------------------------- the pure logic


def test_judge_reports_decisions_that_lead_elsewhere_in_the_new_version() -> None:
    v1, defects = read_file(Path(__file__).parents[1] / "workflows" / "twinning.yaml")
    assert not defects
    v3 = json.loads(json.dumps(v1))
    v3["version"] = 3
    for t in v3["transitions"]:
        if t["trigger"] == "reaffirm":  # in v3 a reaffirmation ends a suspension
            t["dest"] = "active"
    old, new = from_document(v1), from_document(v3)
    items = [
        item(1, "open", "2000"),
        item(2, "suspend", "2022"),
        item(3, "reaffirm", "2023"),
    ]
    verdict = migration.judge("x", items, old, new)
    assert verdict.outcome == migration.MIGRATES
    assert verdict.changes == ("#3 'reaffirm' leads to 'active' in v3, not 'suspended'",)
    assert migration.judge("x", items, old, old).outcome == migration.ALREADY


def item(seq: int, trigger: str, on: str) -> timeline.Item:
    values = {"trigger": trigger, "body": "council", "decided_on": on}
    recorded = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return timeline.Item(seq, "decision", recorded, "a", values, timeline.effective_of(values))
