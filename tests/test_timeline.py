"""The valid-time logic without a store: entries in, items, paths and statuses out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from twinflow import timeline
from twinflow.dates import parse_date
from twinflow.definitions import Library, Workflow
from twinflow.domain import Entry
from twinflow.errors import RuleViolation

CASE = "coevorden-brest"
T0 = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def twinning() -> Workflow:
    return Library().get("twinning")


def at(seq: int) -> dt.datetime:
    """Recording time of the seq-th entry: one hour apart, in seq order."""
    return T0 + dt.timedelta(hours=seq)


def decision(trigger: str, on: str, effective: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "trigger": trigger,
        "party": fields.get("party", "Coevorden"),
        "body": fields.get("body", "council"),
        "decided_on": on,
        "effective_on": effective,
        "reason": fields.get("reason"),
        "sources": [],
    }


def opened(on: str = "2000") -> Entry:
    return Entry(1, "opened", at(1), "clerk", "h1", {"decision": decision("open", on)})


def decided(seq: int, trigger: str, on: str, effective: str | None = None, **fields: Any) -> Entry:
    values = decision(trigger, on, effective, **fields)
    return Entry(seq, "decided", at(seq), "clerk", f"h{seq}", {"decision": values})


def noted(seq: int, kind: str, on: str) -> Entry:
    note = {"kind": kind, "on": on, "summary": f"a {kind}", "party": None, "sources": []}
    return Entry(seq, "noted", at(seq), "clerk", f"h{seq}", {"note": note})


def candidate(seq: int, trigger: str, on: str, effective: str | None = None) -> timeline.Item:
    values = decision(trigger, on, effective)
    return timeline.Item(seq, "decision", at(seq), "clerk", values, timeline.effective_of(values))


def states(steps: list[timeline.Step]) -> list[tuple[str, str | None, str]]:
    return [(s.item.trigger, s.before, s.after) for s in steps]


def status(
    entries: list[Entry], workflow: Workflow, as_of: str, known_at: dt.datetime | None = None
) -> timeline.Status:
    steps = timeline.path(timeline.in_force(entries, known_at), workflow)
    return timeline.status_on(steps, parse_date(as_of))


# ---------------------------------------------------------------- in force, as known at


def test_items_are_decisions_and_notes_in_recording_order_with_their_dates() -> None:
    items = timeline.in_force([opened(), noted(2, "visit", "2019"), decided(3, "suspend", "2022")])
    assert [(i.seq, i.kind, i.trigger, str(i.date)) for i in items] == [
        (1, "decision", "open", "2000"),
        (2, "note", "", "2019"),
        (3, "decision", "suspend", "2022"),
    ]


def test_the_effective_date_places_a_decision_and_defaults_to_the_decision_date() -> None:
    items = timeline.in_force([opened(), decided(2, "freeze", "2024-03-14", "2024-04")])
    assert str(items[1].date) == "2024-04"
    assert str(timeline.in_force([opened()])[0].date) == "2000"


def test_known_at_hides_everything_recorded_after_it() -> None:
    entries = [opened(), decided(2, "suspend", "2022"), decided(3, "freeze", "2024-03")]
    assert [i.seq for i in timeline.in_force(entries, known_at=at(2))] == [1, 2]
    assert timeline.in_force(entries, known_at=at(1) - dt.timedelta(seconds=1)) == []
    assert [i.seq for i in timeline.in_force(entries)] == [1, 2, 3]


def test_a_correction_replaces_the_values_and_moves_the_decision_on_the_axis() -> None:
    fix = Entry(
        3,
        "corrected",
        at(3),
        "auditor",
        "h3",
        {"target": 2, "why": "the minutes say 2021", "changes": {"decided_on": "2021"}},
    )
    items = timeline.in_force([opened(), decided(2, "suspend", "2022"), fix])
    assert [(i.seq, str(i.date)) for i in items] == [(1, "2000"), (2, "2021")]
    assert [c.why for c in items[1].changes] == ["the minutes say 2021"]
    before = timeline.in_force([opened(), decided(2, "suspend", "2022"), fix], known_at=at(2))
    assert str(before[1].date) == "2022"


def test_a_retracted_decision_is_no_longer_in_force() -> None:
    undo = Entry(3, "retracted", at(3), "auditor", "h3", {"target": 2, "why": "recorded twice"})
    items = timeline.in_force([opened(), decided(2, "suspend", "2022"), undo])
    assert [i.seq for i in items] == [1]


# ---------------------------------------------------------------- the path


def test_decisions_are_ordered_by_effective_date_not_by_recording(twinning: Workflow) -> None:
    # The freeze was recorded before the earlier suspension was backfilled from the archive.
    entries = [opened(), decided(2, "freeze", "2024-03", reason="x"), decided(3, "suspend", "2022")]
    steps = timeline.path(timeline.in_force(entries), twinning)
    assert states(steps) == [
        ("open", None, "active"),
        ("suspend", "active", "suspended"),
        ("freeze", "suspended", "frozen"),
    ]


def test_recording_order_breaks_ties_between_equal_effective_dates(twinning: Workflow) -> None:
    entries = [opened(), decided(2, "suspend", "2022"), decided(3, "resume", "2022")]
    steps = timeline.path(timeline.in_force(entries), twinning)
    assert [s.item.seq for s in steps] == [1, 2, 3]
    assert steps[-1].after == "active"


def test_the_opening_comes_first_even_when_a_decision_shares_its_year(twinning: Workflow) -> None:
    entries = [opened("2000-06"), decided(2, "suspend", "2000")]
    assert states(timeline.path(timeline.in_force(entries), twinning))[0] == (
        "open",
        None,
        "active",
    )


def test_reaffirm_keeps_the_state(twinning: Workflow) -> None:
    entries = [opened(), decided(2, "suspend", "2022"), decided(3, "reaffirm", "2023")]
    steps = timeline.path(timeline.in_force(entries), twinning)
    assert states(steps)[-1] == ("reaffirm", "suspended", "suspended")
    assert not steps[-1].changes_state


def test_the_second_sides_suspension_changes_no_state(twinning: Workflow) -> None:
    entries = [
        opened(),
        decided(2, "suspend", "2020~", party="Coevorden", body="executive"),
        decided(3, "suspend", "2022", party="Brest", body="executive"),
    ]
    steps = timeline.path(timeline.in_force(entries), twinning)
    assert states(steps) == [
        ("open", None, "active"),
        ("suspend", "active", "suspended"),
        ("suspend", "suspended", "suspended"),
    ]
    assert [s.changes_state for s in steps] == [True, True, False]


def test_notes_take_no_step(twinning: Workflow) -> None:
    entries = [opened(), noted(2, "visit", "2019"), noted(3, "letter", "2021")]
    assert [s.item.seq for s in timeline.path(timeline.in_force(entries), twinning)] == [1]


def test_an_illegal_step_is_reported_with_the_state_reached(twinning: Workflow) -> None:
    entries = [opened(), decided(2, "resume", "2001")]
    with pytest.raises(timeline.IllegalPath) as raised:
        timeline.path(timeline.in_force(entries), twinning)
    assert (raised.value.item.seq, raised.value.state) == (2, "active")


# ---------------------------------------------------------------- checking a new decision


def test_a_legal_candidate_gets_its_step(twinning: Workflow) -> None:
    items = timeline.in_force([opened(), decided(2, "suspend", "2022")])
    steps = timeline.check_path(items, candidate(3, "freeze", "2024-03"), twinning, CASE)
    assert states(steps)[-1] == ("freeze", "suspended", "frozen")


def test_a_trigger_not_allowed_from_the_state_names_the_allowed_ones(twinning: Workflow) -> None:
    items = timeline.in_force([opened(), decided(2, "freeze", "2024-03", reason="x")])
    with pytest.raises(RuleViolation) as raised:
        timeline.check_path(items, candidate(3, "make_dormant", "2025"), twinning, CASE)
    assert str(raised.value) == (
        "cannot make_dormant case 'coevorden-brest' effective 2025: it is 'frozen' since "
        "2024-03 (decision #2); allowed from 'frozen': freeze, resume, end, reaffirm"
    )


def test_a_backdated_decision_that_breaks_a_later_one_is_rejected_naming_both(
    twinning: Workflow,
) -> None:
    # Dormant since 2010; a suspension backdated to 2005 would leave 'make_dormant' illegal.
    items = timeline.in_force([opened(), decided(2, "make_dormant", "2010")])
    with pytest.raises(RuleViolation) as raised:
        timeline.check_path(items, candidate(3, "suspend", "2021-06", "2005"), twinning, CASE)
    assert str(raised.value) == (
        "cannot record 'suspend' effective 2005 for case 'coevorden-brest': the later decision "
        "#2 'make_dormant' (effective 2010) would no longer be allowed, because the case would "
        "be 'suspended' by then (allowed from 'suspended': suspend, freeze, resume, end, "
        "reaffirm); check the dates, or correct or retract the later decision first"
    )


def test_a_backdated_decision_that_fits_the_path_is_accepted(twinning: Workflow) -> None:
    items = timeline.in_force([opened(), decided(2, "freeze", "2024-03", reason="x")])
    steps = timeline.check_path(items, candidate(3, "suspend", "2024-05", "2022"), twinning, CASE)
    assert states(steps) == [
        ("open", None, "active"),
        ("suspend", "active", "suspended"),
        ("freeze", "suspended", "frozen"),
    ]


def test_a_decision_effective_before_the_opening_is_refused(twinning: Workflow) -> None:
    items = timeline.in_force([opened("2000")])
    with pytest.raises(RuleViolation) as raised:
        timeline.check_path(items, candidate(2, "suspend", "1999"), twinning, CASE)
    assert str(raised.value) == (
        "cannot record 'suspend' for case 'coevorden-brest' effective 1999: that is before "
        "the case was opened (2000, #1); check the date"
    )


def test_a_decision_that_may_fall_on_the_opening_year_is_allowed(twinning: Workflow) -> None:
    items = timeline.in_force([opened("2000-06")])
    steps = timeline.check_path(items, candidate(2, "suspend", "2000"), twinning, CASE)
    assert states(steps)[-1] == ("suspend", "active", "suspended")


def test_a_decision_after_the_end_is_refused_with_none_allowed(twinning: Workflow) -> None:
    items = timeline.in_force([opened(), decided(2, "end", "2024", reason="x")])
    with pytest.raises(RuleViolation, match=r"allowed from 'ended': none$"):
        timeline.check_path(items, candidate(3, "resume", "2025"), twinning, CASE)


# ---------------------------------------------------------------- the state on a date


SEED = [
    opened("2000"),
    noted(2, "visit", "2019"),
    decided(3, "suspend", "2022", party="Brest", body="executive"),
    decided(4, "freeze", "2024-03", reason="formal contacts stop"),
]


@pytest.mark.parametrize(
    ("as_of", "state", "since"),
    [
        ("1999", None, None),
        ("2000-12-31", "active", "2000"),
        ("2001", "active", "2000"),
        ("2021-06", "active", "2000"),
        ("2023-06", "suspended", "2022"),
        ("2024-02-15", "suspended", "2022"),
        ("2024-06", "frozen", "2024-03"),
    ],
)
def test_the_seed_story_is_certain_where_no_date_straddles(
    twinning: Workflow, as_of: str, state: str | None, since: str | None
) -> None:
    found = status(SEED, twinning, as_of)
    assert (found.state, found.certain, found.possible) == (state, True, (state,))
    assert (str(found.since.item.date) if found.since else None) == since
    assert found.pending == ()


def test_a_year_precise_suspension_leaves_mid_year_uncertain(twinning: Workflow) -> None:
    found = status(SEED, twinning, "2022-06-01")
    assert (found.state, found.certain, found.possible) == (
        "suspended",
        False,
        ("active", "suspended"),
    )
    assert [s.item.seq for s in found.pending] == [3]


def test_the_freeze_month_itself_is_uncertain(twinning: Workflow) -> None:
    found = status(SEED, twinning, "2024-03-14")
    assert (found.state, found.possible) == ("frozen", ("suspended", "frozen"))


def test_an_as_of_that_is_itself_partial_is_uncertain_when_a_decision_falls_inside_it(
    twinning: Workflow,
) -> None:
    assert status(SEED, twinning, "2022").possible == ("active", "suspended")
    assert status(SEED, twinning, "2024").possible == ("suspended", "frozen")
    assert status(SEED, twinning, "2023").possible == ("suspended",)


def test_the_opening_year_is_uncertain_about_whether_the_case_was_open(twinning: Workflow) -> None:
    found = status(SEED, twinning, "2000-06-01")
    assert (found.state, found.certain, found.possible) == ("active", False, (None, "active"))


def test_an_uncertain_year_widens_the_uncertainty_beyond_the_year(twinning: Workflow) -> None:
    entries = [opened("2000"), decided(2, "suspend", "2022?")]
    # A plain 2022 is surely in effect in 2023; an uncertain "2022?" may still be pending.
    assert status(entries, twinning, "2023-06").possible == ("active", "suspended")
    assert status(entries, twinning, "2021-06").possible == ("active", "suspended")
    assert status(entries, twinning, "2024-06").possible == ("suspended",)
    assert status(entries, twinning, "2020-06").possible == ("active",)


def test_an_approximate_month_is_uncertain_around_the_month(twinning: Workflow) -> None:
    entries = [opened("2000"), decided(2, "suspend", "2022-03~")]
    exact = [opened("2000"), decided(2, "suspend", "2022-03")]
    assert status(exact, twinning, "2022-05").certain is True
    assert status(entries, twinning, "2022-05").possible == ("active", "suspended")
    assert status(entries, twinning, "2026").possible == ("suspended",)


def test_the_second_suspension_keeps_since_at_the_first_and_adds_no_doubt(
    twinning: Workflow,
) -> None:
    entries = [
        opened("2000"),
        decided(2, "suspend", "2020~", party="Coevorden", body="executive"),
        decided(3, "suspend", "2022", party="Brest", body="executive"),
    ]
    mid_2022 = status(entries, twinning, "2022-06-01")
    assert (mid_2022.state, mid_2022.certain) == ("suspended", True)
    assert mid_2022.since is not None and mid_2022.since.item.seq == 2
    assert str(mid_2022.since.item.date) == "2020~"
    later = status(entries, twinning, "2023")
    assert (later.state, later.since.item.seq if later.since else None) == ("suspended", 2)
    # Around 2020 Coevorden's approximate date is what is in doubt.
    assert status(entries, twinning, "2021-06").possible == ("active", "suspended")


def test_known_at_before_the_freeze_was_recorded_answers_suspended(twinning: Workflow) -> None:
    found = status(SEED, twinning, "2025", known_at=at(3))
    assert (found.state, found.since.item.seq if found.since else None) == ("suspended", 3)
    assert status(SEED, twinning, "2025").state == "frozen"


def test_known_at_before_the_opening_was_recorded_knows_no_state(twinning: Workflow) -> None:
    found = status(SEED, twinning, "2025", known_at=at(0))
    assert (found.state, found.certain, found.since) == (None, True, None)
