"""The fast paths give the answers of the slow ones: the read model's status is the replay's
on every date, snapshots load the case replay builds, plain dates read without the EDTF
grammar are the dates edtf gives. No timings here: bench/run.py measures."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from twinflow import dates, steps, timeline
from twinflow.application import Register
from twinflow.domain import Case, case_id, replay
from twinflow.errors import RuleViolation
from twinflow.eventlog import SNAPSHOT_INTERVAL

KNOWN_NOW = "2999-01-01T00:00:00Z"  # as known at a moment after everything: the replay path
TRIGGERS = ("suspend", "resume", "freeze", "make_dormant", "reaffirm", "resume", "suspend")
QUALIFIERS = ("", "", "", "?", "~")


def _replayed(register: Register, slug: str, as_of: str) -> dict[str, Any]:
    result = register.status(slug, as_of=as_of, known_at=KNOWN_NOW)
    result.pop("known_at")
    return result


def _viewed(register: Register, slug: str, as_of: str) -> dict[str, Any]:
    """The status from the read models: they answered, and did not leave it to a replay."""
    result = register.status(slug, as_of=as_of)  # the read models catch up first
    assert register.views.status_on(slug, dates.parse_date(as_of)) is not None
    result.pop("known_at")
    return result


@pytest.fixture(params=["steps rows", "case rows"])
def paths_from(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the read models keep the paths of these cases: every path in the steps read
    model's rows, or (the default for paths this short) in the `steps` of the case's row."""
    if request.param == "steps rows":
        monkeypatch.setattr(steps, "SHORT", 0)  # and the rows are read first
    return str(request.param)


def _open(register: Register, slug: str, on: str = "2000") -> None:
    register.open_case(
        slug, workflow="twinning", title="t", parties=["A", "B"], by="council", on=on
    )


def _dates(first: int, last: int) -> list[str]:
    """Years, months and days across the span, plain and qualified."""
    found = []
    for year in range(first, last + 1):
        found += [str(year), f"{year}?", f"{year}~", f"{year}-02", f"{year}-06-30"]
        found += [f"{year}-{month:02d}-15" for month in (1, 4, 7, 10)]
        found += [f"{year}-11~", f"{year}-12-31"]
    return found


def _random_date(rng: random.Random) -> str:
    year = rng.randint(2001, 2012)
    precision = rng.choice(("year", "month", "month", "day", "day", "day"))
    text = {
        "year": f"{year}",
        "month": f"{year}-{rng.randint(1, 12):02d}",
        "day": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }[precision]
    return text + rng.choice(QUALIFIERS)


def _record_randomly(register: Register, slug: str, rng: random.Random, tries: int) -> int:
    """Decisions on random, often imprecise and backdated dates; the illegal ones are refused
    by the register and skipped. The read model catches up between them, step by step."""
    register.open_case(
        slug,
        workflow="twinning",
        title=slug,
        parties=["Coevorden", "Brest"],
        by="council",
        on="2000",
    )
    recorded = 0
    for n in range(tries):
        trigger = rng.choice(TRIGGERS)
        try:
            register.decide(
                slug,
                trigger,
                by="council",
                party="Coevorden",
                on=_random_date(rng),
                reason="a reason",
            )
        except RuleViolation:
            continue
        recorded += 1
        if n % 3 == 0:
            register.status(slug)  # an incremental catch-up of the steps read model
    return recorded


def _stored_rows(register: Register, slug: str) -> list[tuple[Any, ...]]:
    with register.views.cursor(commit=False) as cursor:
        cursor.execute(
            register.views.sql(
                f"SELECT {steps.COLUMNS} FROM twinflow_steps WHERE slug = ? ORDER BY idx"
            ),
            (slug,),
        )
        return [tuple(r[c.strip()] for c in steps.COLUMNS.split(",")) for r in cursor.fetchall()]


def _rows_from_replay(register: Register, slug: str) -> list[tuple[Any, ...]]:
    case = register.get_case(slug)
    path = timeline.path(timeline.in_force(case.entries), register.workflow_of(case))
    return steps.rows_of(slug, path)


def test_read_model_status_is_the_replayed_status_on_every_date(
    register: Register, paths_from: str
) -> None:
    rng = random.Random(6)
    recorded = _record_randomly(register, "random-walk", rng, 60)
    assert recorded > 10  # the walk has imprecise, backdated and overlapping decisions
    for as_of in _dates(1999, 2014):
        assert _viewed(register, "random-walk", as_of) == _replayed(
            register, "random-walk", as_of
        ), as_of


def test_uncertain_answers_come_from_the_read_model_too(
    register: Register, paths_from: str
) -> None:
    _open(register, "imprecise")
    register.decide("imprecise", "suspend", by="council", party="B", on="2022")
    register.decide("imprecise", "freeze", by="council", party="A", on="2022-03?", reason="r")
    for as_of in ("2022-02-01", "2022-03-15", "2022", "2022-06-01", "2023", "1999", "2000"):
        viewed = _viewed(register, "imprecise", as_of)
        assert viewed == _replayed(register, "imprecise", as_of), as_of
    assert _viewed(register, "imprecise", "2022-06-01")["certain"] is False
    assert _viewed(register, "imprecise", "1999")["note"].startswith("the case was opened 2000")


def test_corrections_and_retractions_reach_the_read_model(
    register: Register, paths_from: str
) -> None:
    _open(register, "corrected")
    register.decide("corrected", "suspend", by="council", party="B", on="2010")
    register.decide("corrected", "resume", by="council", party="B", on="2012-05")
    register.decide("corrected", "freeze", by="council", party="A", on="2015", reason="r")
    register.status("corrected")
    register.correct("corrected", 3, why="the minutes say 2011", on="2011-05")
    assert _viewed(register, "corrected", "2011-08") == _replayed(register, "corrected", "2011-08")
    assert _viewed(register, "corrected", "2011-08")["state"] == "active"
    register.retract("corrected", 4, why="never decided")
    for as_of in _dates(2009, 2016):
        assert _viewed(register, "corrected", as_of) == _replayed(register, "corrected", as_of)
    assert _viewed(register, "corrected", "2020")["state"] == "active"
    assert _stored_rows(register, "corrected") == _rows_from_replay(register, "corrected")


def test_steps_written_step_by_step_equal_a_rebuild(register: Register, paths_from: str) -> None:
    _record_randomly(register, "stepwise", random.Random(11), 40)
    register.status("stepwise")
    incremental = _stored_rows(register, "stepwise")
    assert incremental == _rows_from_replay(register, "stepwise")
    assert bool(incremental) == (paths_from == "steps rows")
    register.views.rebuild()
    assert _stored_rows(register, "stepwise") == incremental


def test_a_path_has_rows_once_longer_than_short_and_none_once_short_again(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps, "SHORT", 3)
    _open(register, "grows")
    register.decide("grows", "suspend", by="council", party="B", on="2010")
    register.decide("grows", "resume", by="council", party="B", on="2012")
    register.status("grows")
    assert _stored_rows(register, "grows") == []  # 3 steps: read from the case's row
    register.decide("grows", "freeze", by="council", party="A", on="2015", reason="r")
    assert _viewed(register, "grows", "2016")["state"] == "frozen"
    assert [row[1] for row in _stored_rows(register, "grows")] == [0, 1, 2, 3]
    assert _stored_rows(register, "grows") == _rows_from_replay(register, "grows")
    register.retract("grows", 4, why="never decided")
    assert _viewed(register, "grows", "2016")["state"] == "active"
    assert _stored_rows(register, "grows") == []
    for as_of in _dates(1999, 2016):
        assert _viewed(register, "grows", as_of) == _replayed(register, "grows", as_of)


def test_a_long_history_of_few_decisions_is_read_from_its_case_row(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many events, few decisions: no rows, and the case's row read after looking for them."""
    monkeypatch.setattr(steps, "SHORT", 3)
    _open(register, "notes")
    for year in range(2001, 2006):
        register.note("notes", "visit", on=str(year), party="A", summary="a visit")
    register.decide("notes", "suspend", by="council", party="B", on="2003?")
    assert _viewed(register, "notes", "2010")["state"] == "suspended"
    assert _stored_rows(register, "notes") == []
    for as_of in _dates(1999, 2006):
        assert _viewed(register, "notes", as_of) == _replayed(register, "notes", as_of)


def test_a_case_row_from_an_earlier_twinflow_is_left_to_the_replay(register: Register) -> None:
    """An earlier twinflow kept five values per step in a case's row, and every path in the
    steps read model too: a row of that kind without steps rows is not read as a path."""
    _open(register, "older")
    register.decide("older", "suspend", by="council", party="B", on="2010")
    register.status("older")
    with register.views.cursor(commit=True) as cursor:
        cursor.execute("SELECT steps FROM twinflow_cases WHERE slug = 'older'")
        older = [entry[:5] for entry in json.loads(cursor.fetchone()["steps"])]
        cursor.execute(
            register.views.sql("UPDATE twinflow_cases SET steps = ? WHERE slug = 'older'"),
            (json.dumps(older),),
        )
    assert register.views.status_on("older", dates.parse_date("2011")) is None
    assert register.status("older", as_of="2011")["state"] == "suspended"  # replayed
    assert register.list_cases(as_of="2011")[0]["state"] == "suspended"  # five values do


def test_a_snapshot_loads_the_case_that_replay_builds(register: Register) -> None:
    _open(register, "long", on="1900")
    case = register.get_case("long")
    for n in range(SNAPSHOT_INTERVAL + 5):
        year, day = 1901 + n // 300, n % 300
        on = f"{year}-{day // 28 + 1:02d}-{day % 28 + 1:02d}"
        case.decide(
            {
                "trigger": "reaffirm",
                "party": "A",
                "body": "council",
                "decided_on": on,
                "effective_on": None,
                "sources": [],
            },
            "clerk",
        )
    register.events.save(case)
    snapshots = register.events.snapshots
    assert snapshots is not None
    taken = list(snapshots.get(case_id("long")))
    assert [s.originator_version for s in taken] == [SNAPSHOT_INTERVAL]
    loaded = register.get_case("long")
    replayed: Case = replay(None, register.events.events.get(case_id("long")))
    assert loaded.version == replayed.version == SNAPSHOT_INTERVAL + 6
    assert loaded.entries == replayed.entries
    assert loaded.parties == replayed.parties == ["A", "B"]
    assert loaded.last_hash == replayed.last_hash


def test_snapshots_stay_out_of_the_log(register: Register) -> None:
    register.open_case(
        "logged", workflow="twinning", title="t", parties=["A"], by="council", on="1900"
    )
    register.events.take_snapshot(case_id("logged"))
    topics = {n.topic for n in register.events.recorder.select_notifications(start=1, limit=99)}
    assert topics == {"twinflow:workflow:registered", "twinflow:case:opened"}


@pytest.mark.parametrize("year", [1, 999, 1582, 1900, 2000, 2023, 2024, 9999])
def test_plain_dates_are_the_dates_edtf_gives(year: int) -> None:
    texts = [f"{year:04d}"] + [f"{year:04d}-{m:02d}" for m in (1, 2, 12)]
    texts += [f"{year:04d}-02-28", f"{year:04d}-12-31", f"{year:04d}-03-01"]
    for text in texts:
        plain = dates._plain(text)
        assert plain is not None
        assert plain == dates._parse(text, "date"), text


def test_impossible_plain_dates_are_left_to_edtf() -> None:
    for text in ("2023-02-29", "2024-13", "0000", "2024-00", "2024-04-31", "2024-03-00"):
        assert dates._plain(text) is None
        with pytest.raises(Exception, match="date"):
            dates.parse_date(text, "date")
