"""Two more formal processes on the same engine, added as data only: a council motion
(submitted, debated, adopted, rejected or withdrawn, the vote recorded) and a subsidy decision
with objection and appeal (granted or refused; objection; upheld or overturned; appeal)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Invoke

COUNCIL, GROUP = "Gemeenteraad Coevorden", "Fractie GroenLinks"
TOWN, APPLICANT = "Gemeente Coevorden", "Stichting Festival"


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result


def refused(result: Any) -> str:
    assert result.exit_code == 1, result.stdout
    assert result.stdout == ""
    return str(result.stderr)


def state(run: Invoke, case: str, as_of: str | None = None) -> str:
    args = ["status", case, "--format", "json"] + (["--as-of", as_of] if as_of else [])
    return str(json.loads(ok(run(*args)).stdout)["state"])


# ---------------------------------------------------------------- a council motion


def submit(run: Invoke, case: str) -> None:
    ok(run("open", case, "--workflow", "motion", "--title", "Motion: freeze the twinning",
           "--party", GROUP, "--party", COUNCIL, "--by", "group", "--on", "2024-02-20"))


def council(run: Invoke, case: str, trigger: str, *args: str) -> Any:
    return run("decide", case, trigger, "--party", COUNCIL, "--by", "council", *args)


def test_a_motion_is_debated_and_adopted_with_its_vote(run: Invoke) -> None:
    submit(run, "motion-2024-07")
    assert refused(council(run, "motion-2024-07", "adopt", "--on", "2024-03-07", "--vote",
                           "19-8")) == (
        "Error: cannot adopt case 'motion-2024-07' effective 2024-03-07: it is 'submitted' "
        "since 2024-02-20 (decision #1); allowed from 'submitted': debate, withdraw\n"
    )
    ok(run("decide", "motion-2024-07", "debate", "--party", COUNCIL, "--by", "chair", "--on",
           "2024-03-07"))
    ok(run("decide", "motion-2024-07", "amend", "--party", GROUP, "--by", "group", "--on",
           "2024-03-07", "--reason", "informal human-rights contacts stay supported"))
    assert refused(council(run, "motion-2024-07", "adopt", "--on", "2024-03-07")) == (
        "Error: a 'adopt' decision requires vote: give --vote\n"
    )
    assert refused(run("decide", "motion-2024-07", "adopt", "--party", GROUP, "--by", "group",
                       "--on", "2024-03-07", "--vote", "19-8")) == (
        "Error: body kind 'group' may not adopt a 'motion' case: allowed: council\n"
    )
    adopted = ok(council(run, "motion-2024-07", "adopt", "--on", "2024-03-07", "--vote",
                         "19-8", "--ref", "M2024-07"))
    assert adopted.stdout == "recorded adopt on motion-2024-07 (#4), effective 2024-03-07: " \
                             "debated -> adopted\n"
    assert refused(run("decide", "motion-2024-07", "withdraw", "--party", GROUP, "--by",
                       "group", "--on", "2024-03-08")) == (
        "Error: cannot withdraw case 'motion-2024-07' effective 2024-03-08: it is 'adopted' "
        "since 2024-03-07 (decision #4); allowed from 'adopted': none\n"
    )
    ok(run("note", "motion-2024-07", "execution", "--on", "2024-05", "--summary",
           "The college froze the twinning"))
    history = json.loads(ok(run("history", "motion-2024-07", "--format", "json")).stdout)
    assert [(h["trigger"], h["state_after"], h["vote"]) for h in history] == [
        ("open", "submitted", None),
        ("debate", "debated", None),
        ("amend", "debated", None),
        ("adopt", "adopted", "19-8"),
        ("execution", "adopted", None),
    ]
    assert state(run, "motion-2024-07", "2024-03-01") == "submitted"


def test_a_motion_can_be_held_over_rejected_or_withdrawn(run: Invoke) -> None:
    submit(run, "motion-2024-08")
    ok(run("decide", "motion-2024-08", "debate", "--party", COUNCIL, "--by", "chair", "--on",
           "2024-03-07"))
    held = ok(run("decide", "motion-2024-08", "hold", "--party", GROUP, "--by", "group",
                  "--on", "2024-03-07"))
    assert held.stdout.endswith("debated -> submitted\n")
    ok(run("decide", "motion-2024-08", "debate", "--party", COUNCIL, "--by", "council", "--on",
           "2024-04-11"))
    rejected = ok(council(run, "motion-2024-08", "reject", "--on", "2024-04-11", "--vote",
                          "8-19"))
    assert rejected.stdout.endswith("debated -> rejected\n")
    submit(run, "motion-2024-09")
    withdrawn = ok(run("decide", "motion-2024-09", "withdraw", "--party", GROUP, "--by",
                       "member", "--on", "2024-03-01"))
    assert withdrawn.stdout.endswith("submitted -> withdrawn\n")
    listed = json.loads(ok(run("list", "--workflow", "motion", "--format", "json")).stdout)
    assert [(c["case"], c["state"]) for c in listed] == [
        ("motion-2024-08", "rejected"), ("motion-2024-09", "withdrawn")]


# ---------------------------------------------------------------- a subsidy decision


def apply(run: Invoke, case: str) -> None:
    ok(run("open", case, "--workflow", "grant", "--title", "Subsidy for the twinning festival",
           "--party", APPLICANT, "--party", TOWN, "--by", "applicant", "--on", "2024-02-01"))


def town(run: Invoke, case: str, trigger: str, *args: str) -> Any:
    return run("decide", case, trigger, "--party", TOWN, "--by", "executive", *args)


def applicant(run: Invoke, case: str, trigger: str, *args: str) -> Any:
    return run("decide", case, trigger, "--party", APPLICANT, "--by", "applicant", *args)


def court(run: Invoke, case: str, trigger: str, body: str, *args: str) -> Any:
    return run("decide", case, trigger, "--party", TOWN, "--by", body, *args)


def test_a_refusal_goes_through_objection_and_two_appeals_to_a_grant(run: Invoke) -> None:
    case = "subsidy-2024-031"
    apply(run, case)
    assert refused(town(run, case, "refuse", "--on", "2024-04-02")) == (
        "Error: a 'refuse' decision requires reason, reference: give --reason, --ref\n"
    )
    ok(town(run, case, "refuse", "--on", "2024-04-02", "--reason", "the budget is spent",
            "--ref", "2024/118"))
    assert refused(applicant(run, case, "appeal", "--on", "2024-05-10")) == (
        f"Error: cannot appeal case '{case}' effective 2024-05-10: it is 'refused' since "
        "2024-04-02 (decision #2); allowed from 'refused': object, close\n"
    )
    ok(applicant(run, case, "object", "--on", "2024-05-10", "--reason",
                 "the budget was not spent"))
    ok(run("note", case, "hearing", "--on", "2024-06-20", "--summary", "Hearing"))
    ok(town(run, case, "uphold", "--on", "2024-08-01", "--reason", "the budget was spent"))
    ok(applicant(run, case, "appeal", "--on", "2024-09-10"))
    assert refused(court(run, case, "grant", "court", "--on", "2025-03-01", "--ref", "x")) == (
        "Error: body kind 'court' may not grant a 'grant' case: allowed: executive, mayor\n"
    )
    ok(court(run, case, "dismiss", "court", "--on", "2025-03-01", "--ref",
             "ECLI:NL:RBNNE:2025:123"))
    ok(applicant(run, case, "appeal", "--on", "2025-04-10"))  # the higher appeal
    ok(court(run, case, "annul", "appeal_court", "--on", "2026-01-15", "--ref",
             "ECLI:NL:RVS:2026:45"))
    ok(town(run, case, "grant", "--on", "2026-03-01", "--ref", "2026/77"))
    ok(town(run, case, "close", "--on", "2026-06"))
    assert [state(run, case, on) for on in ("2024-03", "2024-04-15", "2024-06", "2024-08-15",
                                            "2025-01", "2025-03-15", "2025-06", "2026-02",
                                            "2026-04", "2026-12")] == [
        "applied", "refused", "objection", "upheld", "appeal", "dismissed", "appeal",
        "overturned", "granted", "closed",
    ]
    dutch = ok(run("--lang", "nl", "status", case, "--as-of", "2026-02")).stdout
    assert dutch.startswith(f"{case}: weigering herroepen since 2026-01-15 (#9)\n")


def test_an_objection_can_be_overturned_or_withdrawn(run: Invoke) -> None:
    apply(run, "subsidy-2024-032")
    ok(town(run, "subsidy-2024-032", "refuse", "--on", "2024-04-02", "--reason", "late",
            "--ref", "2024/119"))
    ok(applicant(run, "subsidy-2024-032", "object", "--on", "2024-05-01", "--reason",
                 "it was on time"))
    overturned = ok(town(run, "subsidy-2024-032", "overturn", "--on", "2024-07-01", "--reason",
                         "the application was on time"))
    # human-readable output shows the labels: the English ones of states here are longer
    assert overturned.stdout.endswith("under objection -> refusal overturned\n")
    granted = ok(town(run, "subsidy-2024-032", "grant", "--on", "2024-07-15", "--ref",
                      "2024/150"))
    assert granted.stdout.endswith("refusal overturned -> granted\n")

    apply(run, "subsidy-2024-033")
    ok(town(run, "subsidy-2024-033", "refuse", "--on", "2024-04-02", "--reason", "late",
            "--ref", "2024/120"))
    ok(applicant(run, "subsidy-2024-033", "object", "--on", "2024-05-01", "--reason", "x"))
    back = ok(applicant(run, "subsidy-2024-033", "withdraw_objection", "--on", "2024-05-20"))
    assert back.stdout.endswith(": under objection -> refused\n")
    ok(town(run, "subsidy-2024-033", "close", "--on", "2024-07"))
    assert state(run, "subsidy-2024-033") == "closed"


def test_the_new_workflows_are_listed_beside_the_twinning(run: Invoke) -> None:
    listed = json.loads(ok(run("workflows", "list", "--format", "json")).stdout)
    assert {(w["name"], w["version"]) for w in listed} >= {("twinning", 1), ("motion", 1),
                                                           ("grant", 1)}
