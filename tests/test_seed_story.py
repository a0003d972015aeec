"""The Coevorden–Brest story, recorded and replayed through the API and the CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Invoke
from twinflow import demo
from twinflow.application import Register

EXPECTED = [
    ("1999", None, True),
    ("2001", "active", True),
    ("2021-06", "active", True),
    ("2023-06", "suspended", True),
    ("2024-02-15", "suspended", True),
    ("2024-06", "frozen", True),
]


@pytest.mark.parametrize(("as_of", "state", "certain"), EXPECTED)
def test_the_story_replays_on_every_date(register: Register, as_of: str, state: str | None,
                                         certain: bool) -> None:
    demo.record(register)
    status = register.status(demo.CASE, as_of=as_of)
    assert (status["state"], status["certain"]) == (state, certain)


def test_mid_2022_is_uncertain_because_brest_suspended_sometime_in_2022(
        register: Register) -> None:
    demo.record(register)
    status = register.status(demo.CASE, as_of="2022-06-01")
    assert status["state"] == "suspended"
    assert status["certain"] is False
    assert status["possible"] == ["active", "suspended"]
    assert status["note"] == "the 2022 suspension (#5) may not yet have taken effect"


def test_known_at_before_the_freeze_was_recorded_shows_the_suspension(
        register: Register) -> None:
    demo.record(register)
    freeze = register.history(demo.CASE)[-1]
    assert freeze["trigger"] == "freeze"
    suspension_recorded = register.history(demo.CASE)[-2]["recorded_at"]
    before = register.status(demo.CASE, as_of="2025", known_at=suspension_recorded)
    assert (before["state"], before["since"]) == ("suspended", "2022")
    assert register.status(demo.CASE, as_of="2025")["state"] == "frozen"


def test_the_story_through_the_cli(run: Invoke) -> None:
    assert run("open", "coevorden-brest", "--workflow", "twinning", "--title",
               "Twinning Coevorden–Brest", "--party", "Coevorden", "--party", "Brest",
               "--by", "council", "--on", "2000").exit_code == 0
    assert run("note", "coevorden-brest", "visit", "--on", "2019", "--party", "Coevorden",
               "--summary", "Visit for Brest's 1000th anniversary").exit_code == 0
    result = run("decide", "coevorden-brest", "suspend", "--party", "Brest", "--by",
                 "executive", "--on", "2022")
    assert result.exit_code == 0, result.stderr
    assert "active -> suspended" in result.stdout
    result = run("decide", "coevorden-brest", "freeze", "--party", "Coevorden", "--by",
                 "executive", "--body-name", "college van B&W Coevorden", "--on", "2024-03",
                 "--reason", "formal contacts stop")
    assert result.exit_code == 0, result.stderr

    status = json.loads(run("status", "coevorden-brest", "--as-of", "2022-06-01",
                            "--format", "json").stdout)
    assert status["state"] == "suspended"
    assert status["certain"] is False
    assert status["possible"] == ["active", "suspended"]
    assert json.loads(run("status", "coevorden-brest", "--as-of", "2024-06", "--format",
                          "json").stdout)["state"] == "frozen"

    history = json.loads(run("history", "coevorden-brest", "--format", "json").stdout)
    assert [(h["seq"], h["kind"], h["trigger"], h["state_after"]) for h in history] == [
        (1, "opened", "open", "active"),
        (2, "noted", "visit", "active"),
        (3, "decided", "suspend", "suspended"),
        (4, "decided", "freeze", "frozen"),
    ]
    assert {h["actor"] for h in history} == {"clerk-a"}
