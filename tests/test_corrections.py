"""Corrections and retractions through the CLI, on both backends: the corrected timeline in
status, history and list, the register as it was before them, and every refusal."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.conftest import Invoke

CASE = "coevorden-brest"


def record_story(run: Invoke) -> None:
    """#1 opened 2000, #2 a visit 2019, #3 Brest suspends 2022, #4 freeze 2024-03."""
    for args in (
        ("open", CASE, "--workflow", "twinning", "--title", "Twinning", "--party", "Coevorden",
         "--party", "Brest", "--by", "council", "--on", "2000"),
        ("note", CASE, "visit", "--on", "2019", "--party", "Coevorden", "--summary", "A visit"),
        ("decide", CASE, "suspend", "--party", "Brest", "--by", "executive", "--on", "2022"),
        ("decide", CASE, "freeze", "--party", "Coevorden", "--by", "executive", "--on",
         "2024-03", "--reason", "formal contacts stop"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.stderr


def as_json(run: Invoke, *args: str) -> Any:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def state(run: Invoke, *args: str) -> tuple[str | None, bool]:
    status = as_json(run, "status", CASE, *args)
    return status["state"], status["certain"]


def fingerprint(run: Invoke) -> str:
    """The digest of the whole log: it changes with any event written."""
    result = run("digest")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_a_correction_moves_a_decision_and_known_at_shows_the_register_before_it(
    run: Invoke,
) -> None:
    record_story(run)
    before_correction = as_json(run, "history", CASE)[-1]["recorded_at"]
    assert state(run, "--as-of", "2021-12-31") == ("active", True)

    result = run("correct", CASE, "3", "--effective", "2021", "--why", "the minutes say 2021")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "corrected #3 of coevorden-brest (#5): effective_on 2022 -> 2021\n"

    assert state(run, "--as-of", "2021-12-31") == ("suspended", True)
    assert state(run, "--as-of", "2021-12-31", "--known-at", before_correction) == (
        "active",
        True,
    )
    listed = as_json(run, "list", "--as-of", "2021-12-31")
    assert [(c["case"], c["state"]) for c in listed] == [(CASE, "suspended")]


def test_history_shows_the_original_values_the_correction_and_who_made_it(run: Invoke) -> None:
    record_story(run)
    assert run("--actor", "clerk-b", "correct", CASE, "4", "--on", "2024-03-14", "--reason",
               "formal contacts stop on 14 March", "--why", "the decision list").exit_code == 0

    freeze = as_json(run, "history", CASE)[-1]
    assert (freeze["seq"], freeze["decided_on"], freeze["effective_on"]) == (4, "2024-03-14",
                                                                             "2024-03-14")
    assert freeze["reason"] == "formal contacts stop on 14 March"
    assert freeze["original"] == {"decided_on": "2024-03", "reason": "formal contacts stop"}
    assert freeze["retracted"] is False
    [change] = freeze["changes"]
    # on PostgreSQL the database role records, on behalf of the clerk named by --actor
    who = "clerk-b" if change["actor"] == "clerk-b" else f"{change['actor']} on behalf of clerk-b"
    assert (change["on_behalf_of"] or change["actor"]) == "clerk-b"
    assert (change["seq"], change["kind"], change["why"]) == (5, "corrected", "the decision list")
    assert change["fields"] == {
        "decided_on": {"from": "2024-03", "to": "2024-03-14"},
        "reason": {"from": "formal contacts stop", "to": "formal contacts stop on 14 March"},
    }

    table = run("history", CASE).stdout
    assert "corrected #5" in table.splitlines()[5]
    assert table.splitlines()[-1] == (
        f"#4 corrected by #5 ({who}, {change['recorded_at'][:19]}): "
        "decided_on 2024-03 -> "
        "2024-03-14, reason formal contacts stop -> formal contacts stop on 14 March; "
        "why: the decision list"
    )
    csv_row = list(csv.DictReader(io.StringIO(run("history", CASE, "--format", "csv").stdout)))[-1]
    assert (csv_row["state_after"], csv_row["retracted"], csv_row["amended"]) == (
        "frozen", "no", table.splitlines()[-1].removeprefix("#4 "))


def test_history_known_at_before_a_correction_shows_the_original(run: Invoke) -> None:
    record_story(run)
    recorded = as_json(run, "history", CASE)[-1]["recorded_at"]
    assert run("correct", CASE, "2", "--summary", "A delegation visits", "--why", "typo"
               ).exit_code == 0
    visit_now = as_json(run, "history", CASE)[1]
    visit_then = as_json(run, "history", CASE, "--known-at", recorded)[1]
    assert (visit_now["summary"], visit_now["original"]) == (
        "A delegation visits", {"summary": "A visit"})
    assert (visit_then["summary"], visit_then["changes"]) == ("A visit", [])


def test_a_retraction_leaves_the_event_in_history_but_off_the_timeline(run: Invoke) -> None:
    record_story(run)
    before = as_json(run, "history", CASE)[-1]["recorded_at"]
    result = run("retract", CASE, "4", "--why", "recorded on the wrong case")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "retracted #4 freeze of coevorden-brest (#5); latest state frozen -> suspended\n"
    )
    assert state(run, "--as-of", "2025") == ("suspended", True)
    assert state(run, "--as-of", "2025", "--known-at", before) == ("frozen", True)
    rows = as_json(run, "history", CASE)
    assert [(r["seq"], r["retracted"], r["state_after"]) for r in rows] == [
        (1, False, "active"), (2, False, "active"), (3, False, "suspended"), (4, True, None)]
    assert rows[-1]["changes"][0]["why"] == "recorded on the wrong case"
    assert as_json(run, "list", "--as-of", "2025")[0]["state"] == "suspended"
    then = as_json(run, "history", CASE, "--known-at", before)
    assert [(r["seq"], r["retracted"]) for r in then][-1] == (4, False)


def test_a_correction_that_makes_a_later_decision_illegal_is_refused(run: Invoke) -> None:
    record_story(run)
    assert run("decide", CASE, "resume", "--party", "Coevorden", "--by", "council", "--on",
               "2024-06").exit_code == 0
    assert run("retract", CASE, "4", "--why", "never happened").exit_code == 0
    unchanged = fingerprint(run)
    result = run("correct", CASE, "3", "--effective", "2025", "--why", "later than we thought")
    assert (result.exit_code, result.stderr) == (1, (
        "Error: cannot correct #3 'suspend' of case 'coevorden-brest' to effective 2025: the "
        "decision #5 'resume' (effective 2024-06) would no longer be allowed, because the case "
        "would be 'active' by then (allowed from 'active': suspend, freeze, make_dormant, end, "
        "reaffirm); correct or retract #5 first\n"))
    result = run("retract", CASE, "3", "--why", "Brest never suspended")
    assert (result.exit_code, result.stderr) == (1, (
        "Error: cannot retract #3 'suspend' of case 'coevorden-brest': the decision #5 "
        "'resume' (effective 2024-06) would no longer be allowed, because the case would be "
        "'active' by then (allowed from 'active': suspend, freeze, make_dormant, end, "
        "reaffirm); correct or retract #5 first\n"))
    assert fingerprint(run) == unchanged


BAD = [
    (("correct", CASE, "9", "--reason", "x", "--why", "w"), 1,
     "case 'coevorden-brest' has no event #9: its events are #1 to #7; see "
     "`twinflow history coevorden-brest`"),
    (("correct", CASE, "5", "--reason", "x", "--why", "w"), 1,
     "#5 of case 'coevorden-brest' is a correction (of #3): it cannot be corrected; correct #3 "
     "again with the values it should have"),
    (("retract", CASE, "5", "--why", "w"), 1,
     "#5 of case 'coevorden-brest' is a correction (of #3): it cannot be retracted; correct #3 "
     "again with the values it should have"),
    (("retract", CASE, "6", "--why", "w"), 1,
     "#6 of case 'coevorden-brest' is a retraction (of #4): it cannot be retracted; if #4 "
     "stands after all, record it again"),
    (("retract", CASE, "4", "--why", "w"), 1,
     "#4 of case 'coevorden-brest' was already retracted (by #6): nothing to do"),
    (("correct", CASE, "4", "--reason", "x", "--why", "w"), 1,
     "#4 of case 'coevorden-brest' was already retracted (by #6): there is nothing in force to "
     "correct"),
    (("retract", CASE, "1", "--why", "w"), 1,
     "the opening (#1) of case 'coevorden-brest' cannot be retracted: correct it with "
     "`twinflow correct coevorden-brest 1 --why ...`, or open a new case"),
    (("correct", CASE, "2", "--by", "council", "--why", "w"), 2,
     "--by does not apply to #2, a note ('visit'): it takes --on, --kind, --summary, --party, "
     "--source"),
    (("correct", CASE, "3", "--summary", "s", "--why", "w"), 2,
     "--summary does not apply to #3, a decision ('suspend'): it takes --on, --effective, "
     "--published, --by, --party, --body-name, --scope, --vote, --ref, --reason, --source"),
    (("correct", CASE, "1", "--party", "Brest", "--why", "w"), 2,
     "--party does not apply to #1, the opening (a case's parties are named when it is "
     "opened): it takes --on, --effective, --published, --by, --body-name, --scope, --vote, "
     "--ref, --reason, --source"),
    (("correct", CASE, "2", "--why", "w"), 2,
     "a correction must change at least one field: give e.g. --on, --effective, --reason or "
     "--summary (see `twinflow correct --help`)"),
    (("correct", CASE, "2", "--summary", "A visit", "--why", "w"), 2,
     "nothing to correct: #2 of case 'coevorden-brest' already has --summary 'A visit'"),
    (("correct", CASE, "2", "--summary", "s", "--why", " "), 2,
     "--why is empty: say why, e.g. --why 'the minutes give 2021'"),
    (("correct", CASE, "2", "--summary", " ", "--why", "w"), 2,
     "the summary is empty: say in --summary what happened"),
    (("correct", CASE, "2", "--on", "1999", "--why", "w"), 1,
     "cannot correct #2 (note 'visit') of case 'coevorden-brest' to 1999: 1999 would be before "
     "the case was opened (2000, #1); check the date"),
    (("correct", CASE, "1", "--on", "2020", "--why", "w"), 1,
     "cannot correct #1 (the opening) of case 'coevorden-brest' to effective 2020: the note #2 "
     "'visit' (2019) would be before the opening (2020); correct #2 first"),
    (("correct", CASE, "3", "--effective", "1990", "--why", "w"), 1,
     "cannot correct #3 'suspend' of case 'coevorden-brest' to effective 1990: effective 1990 "
     "it would be before the case was opened (2000, #1); check the date"),
    (("correct", CASE, "2", "--kind", "party", "--why", "w"), 1,
     "unknown note kind 'party' in workflow 'twinning': known: visit, letter, statement, other"),
    (("correct", CASE, "3", "--party", "Paris", "--why", "w"), 1,
     "'Paris' is not a party to case 'coevorden-brest': parties: Coevorden, Brest"),
    (("correct", CASE, "3", "--by", "association", "--why", "w"), 1,
     "body kind 'association' may not suspend a 'twinning' case: allowed: council, executive, "
     "committee, mayor"),
    (("correct", CASE, "1", "--by", "association", "--why", "w"), 1,
     "body kind 'association' may not open a 'twinning' case: allowed: council, executive, "
     "committee, mayor"),
    (("correct", "nobody-here", "1", "--reason", "x", "--why", "w"), 1,
     "unknown case 'nobody-here': see `twinflow list` for the cases, or open it with "
     "`twinflow open nobody-here ...`"),
]


def test_bad_corrections_and_retractions_are_refused_and_write_nothing(run: Invoke) -> None:
    record_story(run)
    assert run("correct", CASE, "3", "--effective", "2022-02", "--why", "minutes").exit_code == 0
    assert run("retract", CASE, "4", "--why", "wrong case").exit_code == 0  # #6
    assert run("decide", CASE, "freeze", "--party", "Coevorden", "--by", "executive", "--on",
               "2024-03", "--reason", "formal contacts stop").exit_code == 0  # #7
    # a freeze requires a reason: clearing it is refused like a decision without one
    cleared = (("correct", CASE, "7", "--reason", "", "--why", "w"), 1,
               "a 'freeze' decision requires reason: give --reason")
    unchanged = fingerprint(run)
    for args, code, message in [*BAD, cleared]:
        result = run(*args)
        assert (result.exit_code, result.stderr, result.stdout) == (
            code, f"Error: {message}\n", ""), args
    assert fingerprint(run) == unchanged


@pytest.mark.parametrize(("args", "message"), [
    (("correct", CASE, "0", "--why", "w"), "Invalid value for 'SEQ': 0 is not in the range x>=1."),
    (("correct", CASE, "2", "--on", "2019-13", "--why", "w"), "Invalid value for '--on'"),
    (("correct", CASE, "2", "--summary", "s"), "Missing option '--why'"),
])
def test_malformed_options_are_usage_errors(run: Invoke, args: tuple[str, ...],
                                            message: str) -> None:
    record_story(run)
    unchanged = fingerprint(run)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert fingerprint(run) == unchanged


def test_a_second_correction_of_the_same_event_wins_and_both_stay_in_history(
    run: Invoke,
) -> None:
    record_story(run)
    assert run("correct", CASE, "3", "--effective", "2021", "--why", "first try").exit_code == 0
    assert run("correct", CASE, "3", "--effective", "2022-05", "--why", "found the minutes"
               ).exit_code == 0
    row = as_json(run, "history", CASE)[2]
    assert row["effective_on"] == "2022-05"
    assert row["original"] == {"effective_on": None}
    assert [c["fields"]["effective_on"] for c in row["changes"]] == [
        {"from": "2022", "to": "2021"}, {"from": "2021", "to": "2022-05"}]
    assert state(run, "--as-of", "2022-04") == ("active", True)


def test_an_opening_corrected_to_after_a_decision_is_refused(run: Invoke) -> None:
    assert run("open", "a-b", "--workflow", "twinning", "--title", "A–B", "--party", "A",
               "--party", "B", "--by", "council", "--on", "2000").exit_code == 0
    assert run("decide", "a-b", "suspend", "--party", "B", "--by", "council", "--on", "2022"
               ).exit_code == 0
    unchanged = fingerprint(run)
    result = run("correct", "a-b", "1", "--on", "2023", "--why", "the founding was later")
    assert (result.exit_code, result.stderr) == (1, (
        "Error: cannot correct #1 (the opening) of case 'a-b' to effective 2023: the decision "
        "#2 'suspend' (effective 2022) would be before the opening (2023, #1); correct #2 "
        "first\n"))
    assert fingerprint(run) == unchanged
    result = run("correct", "a-b", "1", "--on", "2022", "--effective", "2021-06", "--why", "x")
    assert result.stdout == (
        "corrected #1 of a-b (#3): decided_on 2000 -> 2022, effective_on 2000 -> 2021-06\n")
