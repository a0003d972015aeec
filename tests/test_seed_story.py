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
    # On PostgreSQL the database role records, for the clerk named by TWINFLOW_ACTOR.
    assert {h["on_behalf_of"] or h["actor"] for h in history} == {"clerk-a"}


# ---------------------------------------------------------------- the same story, from the CLI

STATUS_KEYS = {"case", "workflow", "version", "state", "certain", "as_of", "known_at", "since"}


def cli_args(command: str, name: str | None, fields: dict[str, object]) -> list[str]:
    """The demo's story as command lines: the same values the API was given."""
    args = [command, demo.CASE, *([name] if name else [])]
    for key, value in fields.items():
        option = "--" + {"parties": "party", "sources": "source"}.get(key, key).replace("_", "-")
        for one in value if isinstance(value, list) else [value]:
            args += [option, str(one)]
    return args


@pytest.fixture
def cli_story(run: Invoke) -> Invoke:
    result = run(*cli_args("open", None, demo.OPENING))
    assert result.exit_code == 0, result.stderr
    for command, name, fields in demo.STORY:
        result = run(*cli_args(command, name, fields))
        assert result.exit_code == 0, result.stderr
    return run


def status_json(run: Invoke, *args: str) -> dict[str, object]:
    result = run("status", demo.CASE, *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(("as_of", "state", "certain"),
                         [*EXPECTED, ("2022-06", "suspended", False)])
def test_the_story_replays_on_every_date_through_the_cli(cli_story: Invoke, as_of: str,
                                                         state: str | None,
                                                         certain: bool) -> None:
    status = status_json(cli_story, "--as-of", as_of)
    assert set(status) >= STATUS_KEYS
    assert (status["case"], status["workflow"], status["version"]) == (demo.CASE, "twinning", 1)
    assert (status["state"], status["certain"], status["as_of"]) == (state, certain, as_of)
    assert ("possible" in status, "note" in status) == (not certain, not certain or not state)


def test_since_is_the_effective_date_of_the_decision_that_led_to_the_state(
        cli_story: Invoke) -> None:
    assert [status_json(cli_story, "--as-of", d)["since"] for d in
            ("1999", "2001", "2023-06", "2024-06")] == [None, "2000", "2022", "2024-03"]


def test_before_the_opening_the_state_is_null_with_a_note(cli_story: Invoke) -> None:
    status = status_json(cli_story, "--as-of", "1999")
    assert (status["state"], status["certain"], status["since"]) == (None, True, None)
    assert status["note"] == "the case was opened 2000, after 1999"
    text = cli_story("status", demo.CASE, "--as-of", "1999").stdout
    assert text.splitlines()[0] == "coevorden-brest: not open"


def test_an_uncertain_status_reads_as_such(cli_story: Invoke) -> None:
    result = cli_story("status", demo.CASE, "--as-of", "2022-06-01")
    lines = result.stdout.splitlines()
    assert lines[0] == "coevorden-brest: suspended (uncertain: active or suspended) since 2022 (#5)"
    assert lines[1].startswith("  as of 2022-06-01, as known at ")
    assert lines[2] == "  note: the 2022 suspension (#5) may not yet have taken effect"
    status = status_json(cli_story, "--as-of", "2022-06-01")
    assert status["possible"] == ["active", "suspended"]
    assert status["note"] == "the 2022 suspension (#5) may not yet have taken effect"


def test_known_at_before_the_freeze_was_recorded_through_the_cli(cli_story: Invoke) -> None:
    history = json.loads(cli_story("history", demo.CASE, "--format", "json").stdout)
    suspension, freeze = history[-2], history[-1]
    assert (suspension["trigger"], freeze["trigger"]) == ("suspend", "freeze")
    before = status_json(cli_story, "--as-of", "2024-06", "--known-at",
                         suspension["recorded_at"])
    assert (before["state"], before["certain"], before["since"]) == ("suspended", True, "2022")
    assert before["known_at"] == suspension["recorded_at"][:19] + "+00:00"
    assert status_json(cli_story, "--as-of", "2024-06")["state"] == "frozen"
    old = json.loads(cli_story("history", demo.CASE, "--known-at", suspension["recorded_at"],
                               "--format", "json").stdout)
    assert [h["seq"] for h in old] == [1, 2, 3, 4, 5]


def test_known_at_before_anything_was_recorded_knows_nothing(cli_story: Invoke) -> None:
    status = status_json(cli_story, "--as-of", "2024-06", "--known-at", "2001-01-01")
    assert (status["state"], status["known_at"]) == (None, "2001-01-01T23:59:59+00:00")
    assert str(status["note"]).startswith(f"the register held nothing on {demo.CASE!r} at "
                                          "2001-01-01T23:59:59+00:00")


def test_the_cli_history_carries_every_field_of_the_story(cli_story: Invoke) -> None:
    history = json.loads(cli_story("history", demo.CASE, "--format", "json").stdout)
    freeze = history[-1]
    assert {k: freeze[k] for k in ("seq", "kind", "trigger", "effective_on", "decided_on",
                                   "party", "body", "body_name", "scope", "sources",
                                   "state_before", "state_after")} == {
        "seq": 6, "kind": "decided", "trigger": "freeze", "effective_on": "2024-03",
        "decided_on": "2024-03", "party": "Coevorden", "body": "executive",
        "body_name": "college van B&W Coevorden",
        "scope": "formal contacts; informal contacts on human rights stay supported",
        "sources": [demo.SOURCE], "state_before": "suspended", "state_after": "frozen",
    }
    assert [h["kind"] for h in history] == ["opened", "noted", "noted", "noted", "decided",
                                            "decided"]
    assert all(h["recorded_at"] and h["actor"] for h in history)
