"""`history` shows migrations, states a defaulted effective date by its value when it is
corrected, and dates with unspecified digits are recorded and answered honestly."""

from __future__ import annotations

import csv
import io

from tests.conftest import Invoke
from tests.test_migrate import V2, json_of, ok, open_case, the_story

CASE = "coevorden-brest"


def test_history_shows_a_migration_after_the_valid_time_rows_in_every_format(
    run: Invoke,
) -> None:
    the_story(run)
    held = json_of(run, "history", CASE)[-1]["recorded_at"]
    ok(run("--workflows", V2, "migrate", CASE, "--to", "2", "--reason", "the council adopted v2"))

    rows = json_of(run, "history", CASE)
    assert [(r["seq"], r["kind"]) for r in rows] == [
        (1, "opened"), (2, "noted"), (3, "decided"), (4, "decided"), (5, "migrated")]
    moved = rows[-1]
    assert moved["trigger"] == "twinning v1 -> v2"
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    assert moved["reason"] == "the council adopted v2"
    assert moved["effective_on"] is None and moved["state_after"] is None
    assert moved["recorded_at"] > held
    assert (moved["on_behalf_of"] or moved["actor"]) == "clerk-a"

    table = ok(run("history", CASE)).stdout.splitlines()
    assert table[-1].startswith("5 ")
    assert "migrated" in table[-1] and "twinning v1 -> v2" in table[-1]
    assert "the council adopted v2" in table[-1]

    last = list(csv.DictReader(io.StringIO(ok(run("history", CASE, "--format", "csv")).stdout)))
    assert (last[-1]["seq"], last[-1]["kind"], last[-1]["trigger"], last[-1]["reason"]) == (
        "5", "migrated", "twinning v1 -> v2", "the council adopted v2")
    assert last[-1]["recorded_at"] == moved["recorded_at"]

    # the register as it was before the migration did not hold it
    then = json_of(run, "history", CASE, "--known-at", held)
    assert [r["kind"] for r in then] == ["opened", "noted", "decided", "decided"]


def test_a_later_decision_comes_before_the_migration_and_migrating_back_follows(
    run: Invoke,
) -> None:
    open_case(run, CASE)
    ok(run("--workflows", V2, "migrate", CASE, "--to", "2", "--reason", "v2"))
    ok(run("--workflows", V2, "decide", CASE, "suspend", "--party", "Brest", "--by",
           "executive", "--on", "2010"))
    ok(run("--workflows", V2, "migrate", CASE, "--to", "1", "--reason", "too early"))
    rows = json_of(run, "history", CASE)
    assert [(r["seq"], r["kind"], r["trigger"]) for r in rows] == [
        (1, "opened", "open"),
        (3, "decided", "suspend"),
        (2, "migrated", "twinning v1 -> v2"),
        (4, "migrated", "twinning v2 -> v1"),
    ]


def test_correcting_a_defaulted_effective_date_names_the_date_in_force(run: Invoke) -> None:
    open_case(run, CASE)
    ok(run("note", CASE, "visit", "--on", "2019", "--summary", "A visit"))
    ok(run("decide", CASE, "suspend", "--party", "Brest", "--by", "executive", "--on", "2022"))
    result = ok(run("correct", CASE, "3", "--why", "earlier", "--effective", "2021"))
    assert result.stdout == f"corrected #3 of {CASE} (#4): effective_on 2022 -> 2021\n"

    row = json_of(run, "history", CASE)[2]
    assert row["changes"][0]["fields"] == {"effective_on": {"from": "2022", "to": "2021"}}
    assert row["effective_on"] == "2021"
    table = ok(run("history", CASE)).stdout.splitlines()
    assert table[-1].startswith("#3 corrected by #4 (")
    assert table[-1].endswith("): effective_on 2022 -> 2021; why: earlier")
    assert "(none)" not in "\n".join(table)

    # a second correction names the first one's value
    ok(run("correct", CASE, "3", "--why", "the minutes", "--effective", "2021-06"))
    row = json_of(run, "history", CASE)[2]
    assert [c["fields"]["effective_on"] for c in row["changes"]] == [
        {"from": "2022", "to": "2021"}, {"from": "2021", "to": "2021-06"}]


def test_correcting_decided_on_and_effective_together_names_the_old_decided_on(
    run: Invoke,
) -> None:
    open_case(run, CASE)
    result = ok(run("correct", CASE, "1", "--on", "1999", "--effective", "1998", "--why", "x"))
    assert result.stdout == (
        f"corrected #1 of {CASE} (#2): decided_on 2000 -> 1999, effective_on 2000 -> 1998\n")


def test_an_unspecified_decade_is_recorded_and_answered_honestly(run: Invoke) -> None:
    open_case(run, CASE)
    result = ok(run("decide", CASE, "suspend", "--party", "Brest", "--by", "executive",
                    "--on", "202X"))
    assert result.stdout == (
        f"recorded suspend on {CASE} (#2), effective 202X: active -> suspended\n")
    assert json_of(run, "history", CASE)[1]["effective_on"] == "202X"

    before = json_of(run, "status", CASE, "--as-of", "2015")
    assert (before["state"], before["certain"]) == ("active", True)
    inside = json_of(run, "status", CASE, "--as-of", "2025")
    assert inside["certain"] is False
    assert set(inside["possible"]) == {"active", "suspended"}
    assert "202X suspension (#2) may not yet have taken effect" in inside["note"]


def test_the_date_help_lists_every_accepted_form(run: Invoke) -> None:
    shown = " ".join(ok(run("decide", "--help")).stdout.split())
    assert "2022% (uncertain and approximate), 202X, 2022-XX (unspecified digits)" in shown
    refused = run("decide", CASE, "suspend", "--party", "Brest", "--by", "executive",
                  "--on", "2022-13")
    assert refused.exit_code == 2
    assert "% (both), or with unspecified digits as X (202X, 2022-XX)" in refused.stderr
