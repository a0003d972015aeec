"""`twinflow list`: cases and their states on a date, filtered, in every format."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.conftest import Invoke

CASES = [
    (
        "open",
        "coevorden-brest",
        "--title",
        "Coevorden–Brest",
        "--party",
        "Coevorden",
        "--party",
        "Brest",
        "--on",
        "2000",
    ),
    (
        "decide",
        "coevorden-brest",
        "suspend",
        "--party",
        "Brest",
        "--by",
        "executive",
        "--on",
        "2022",
    ),
    (
        "open",
        "coevorden-kobryn",
        "--title",
        "Coevorden–Kobryn",
        "--party",
        "Coevorden",
        "--party",
        "Kobryn",
        "--on",
        "1995",
    ),
    (
        "decide",
        "coevorden-kobryn",
        "make_dormant",
        "--party",
        "Coevorden",
        "--by",
        "council",
        "--on",
        "2010-05-01",
    ),
    (
        "open",
        "emmen-haren",
        "--title",
        "Emmen–Haren",
        "--party",
        "Emmen",
        "--party",
        "Haren",
        "--on",
        "2005",
    ),
    (
        "decide",
        "emmen-haren",
        "end",
        "--party",
        "Haren",
        "--by",
        "council",
        "--on",
        "2021-03~",
        "--reason",
        "Haren merged into Groningen",
    ),
]


@pytest.fixture
def cases(run: Invoke) -> Invoke:
    for args in CASES:
        extra = ("--workflow", "twinning", "--by", "council") if args[0] == "open" else ()
        result = run(*args, *extra)
        assert result.exit_code == 0, result.stderr
    return run


def listed(run: Invoke, *args: str) -> list[dict[str, Any]]:
    result = run("list", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def states(rows: list[dict[str, Any]]) -> dict[str, tuple[str | None, bool]]:
    return {r["case"]: (r["state"], r["certain"]) for r in rows}


def test_every_case_with_its_state_on_a_date(cases: Invoke) -> None:
    assert states(listed(cases, "--as-of", "2024")) == {
        "coevorden-brest": ("suspended", True),
        "coevorden-kobryn": ("dormant", True),
        "emmen-haren": ("ended", True),
    }
    assert states(listed(cases, "--as-of", "1999")) == {
        "coevorden-brest": (None, True),
        "coevorden-kobryn": ("active", True),
        "emmen-haren": (None, True),
    }


def test_an_uncertain_case_says_so_with_its_possible_states(cases: Invoke) -> None:
    rows = {r["case"]: r for r in listed(cases, "--as-of", "2022-06-01")}
    brest = rows["coevorden-brest"]
    assert (brest["state"], brest["certain"], brest["possible"], brest["since"]) == (
        "suspended",
        False,
        ["active", "suspended"],
        "2022",
    )
    assert rows["coevorden-kobryn"]["possible"] == ["dormant"]
    assert rows["emmen-haren"]["possible"] == ["ended"]  # 2021-03~ is past by then
    haren = {r["case"]: r for r in listed(cases, "--as-of", "2021-03-15")}["emmen-haren"]
    assert (haren["certain"], haren["possible"]) == (False, ["active", "ended"])


def test_the_workflow_filter(cases: Invoke) -> None:
    assert len(listed(cases, "--workflow", "twinning")) == 3
    assert listed(cases, "--workflow", "motion") == []


def test_the_party_filter(cases: Invoke) -> None:
    assert [r["case"] for r in listed(cases, "--party", "Coevorden")] == [
        "coevorden-brest",
        "coevorden-kobryn",
    ]
    assert [r["case"] for r in listed(cases, "--party", "Haren")] == ["emmen-haren"]
    assert listed(cases, "--party", "Minsk") == []


def test_the_state_filter_keeps_cases_that_may_be_in_the_state(cases: Invoke) -> None:
    assert [r["case"] for r in listed(cases, "--state", "suspended", "--as-of", "2024")] == [
        "coevorden-brest"
    ]
    # Mid-2022 Brest's suspension may or may not have taken effect: it is both.
    for state in ("active", "suspended"):
        assert [r["case"] for r in listed(cases, "--state", state, "--as-of", "2022-06-01")] == [
            "coevorden-brest"
        ]
    assert [r["case"] for r in listed(cases, "--state", "ended", "--as-of", "2021-03-15")] == [
        "emmen-haren"
    ]
    assert [r["case"] for r in listed(cases, "--state", "active", "--as-of", "2009")] == [
        "coevorden-brest",
        "coevorden-kobryn",
        "emmen-haren",
    ]


def test_filters_combine(cases: Invoke) -> None:
    rows = listed(
        cases,
        "--party",
        "Coevorden",
        "--state",
        "dormant",
        "--as-of",
        "2022-06-01",
        "--workflow",
        "twinning",
    )
    assert [r["case"] for r in rows] == ["coevorden-kobryn"]


def test_a_new_decision_shows_in_the_next_listing(cases: Invoke) -> None:
    assert states(listed(cases, "--as-of", "2025"))["coevorden-kobryn"] == ("dormant", True)
    assert (
        cases(
            "decide",
            "coevorden-kobryn",
            "resume",
            "--party",
            "Kobryn",
            "--by",
            "council",
            "--on",
            "2024-09-01",
        ).exit_code
        == 0
    )
    assert states(listed(cases, "--as-of", "2025"))["coevorden-kobryn"] == ("active", True)


def test_csv_parses_back_to_the_json_rows(cases: Invoke) -> None:
    result = cases("list", "--as-of", "2022-06-01", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = listed(cases, "--as-of", "2022-06-01")
    assert [r["case"] for r in rows] == [r["case"] for r in expected]
    assert [(r["state"], r["certain"], r["since"], r["version"]) for r in rows] == [
        (e["state"], "yes" if e["certain"] else "no", e["since"], str(e["version"]))
        for e in expected
    ]
    assert rows[0]["title"] == "Coevorden–Brest"
    assert rows[0]["parties"].replace(";", " ").split() == ["Coevorden", "Brest"]


def test_the_table_marks_uncertain_states(cases: Invoke) -> None:
    result = cases("list", "--as-of", "2022-06-01")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["case", "state", "certain"]
    assert set(lines[1]) == {"-", " "}
    body = {line.split()[0]: line.split()[1:3] for line in lines[2:]}
    assert body == {
        "coevorden-brest": ["suspended?", "no"],
        "coevorden-kobryn": ["dormant", "yes"],
        "emmen-haren": ["ended", "yes"],
    }
