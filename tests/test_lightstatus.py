"""`twinflow status` read straight from a SQLite register's read models (lightstatus) answers
byte for byte what the full path answers, and leaves every case it cannot be sure of to the
full path: read models behind the log, a dropped guard, PostgreSQL, --known-at, an unknown
case, settings that change how the register is read."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow import dates, demo, lightstatus, queries, snapshots, steps, views
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.domain import StoredWorkflow, workflow_id
from twinflow.errors import RuleViolation
from twinflow.eventlog import Events

V2 = Path(__file__).parent / "fixtures" / "workflows" / "versions"
NOW = dt.datetime(2026, 5, 17, 8, 30, 12, 345678, tzinfo=dt.UTC)
TODAY = dates.parse_date("2026-05-17")
CASES = ("coevorden-brest", "imprecise", "backdated", "corrected", "migrated", "motion", "walk")
AS_OF = [
    None,
    "1999",
    "2000",
    "2000-06~",
    "2009-12-31",
    "2010",
    "2010-06",
    "2011-05-20",
    "2011?",
    "2012",
    "2012-05",
    "2015",
    "2019-01",
    "2021",
    "2021-06-01",
    "2022",
    "2022-02-01",
    "2022-03-15",
    "2022-06-01",
    "2022%",
    "2023",
    "2023-06",
    "202X",
    "2024-02-15",
    "2024-06",
    "2030",
]


def _record_walk(register: Register, rng: random.Random) -> None:
    """Decisions on random, often imprecise and backdated dates; the register refuses the
    illegal ones, which are skipped."""
    register.open_case(
        "walk", workflow="twinning", title="Walk", parties=["A", "B"], by="council", on="2000"
    )
    for _ in range(40):
        year = rng.randint(2001, 2024)
        on = rng.choice((f"{year}", f"{year}-{rng.randint(1, 12):02d}", f"{year}-03-14"))
        try:
            register.decide(
                "walk",
                rng.choice(("suspend", "resume", "freeze", "make_dormant", "reaffirm")),
                by="council",
                party="A",
                on=on + rng.choice(("", "", "?", "~")),
                reason="r",
            )
        except RuleViolation:
            continue


def _record(path: Path) -> None:
    register = Register.at(str(path), create=True)  # the bundled workflows: twinning v1
    try:
        demo.record(register)
        opening: dict[str, Any] = dict(
            workflow="twinning", title="T", parties=["A", "B"], by="council", on="2000"
        )
        register.open_case("imprecise", **opening)
        register.decide("imprecise", "suspend", by="council", party="B", on="2022")
        register.decide("imprecise", "freeze", by="council", party="A", on="2022-03?", reason="r")
        register.decide("imprecise", "resume", by="council", party="A", on="2023-XX")

        register.open_case("backdated", **opening)
        register.decide("backdated", "freeze", by="council", party="A", on="2015", reason="r")
        register.decide("backdated", "suspend", by="council", party="B", on="2010")  # earlier
        register.decide("backdated", "resume", by="council", party="B", on="2012~")

        register.open_case("corrected", **opening)
        register.decide("corrected", "suspend", by="council", party="B", on="2010")
        register.decide("corrected", "resume", by="council", party="B", on="2012-05")
        register.decide("corrected", "freeze", by="council", party="A", on="2015", reason="r")
        register.correct("corrected", 3, why="the minutes say 2011", on="2011-05")
        register.retract("corrected", 4, why="never decided")

        register.open_case("migrated", **opening)

        register.open_case(
            "motion", workflow="motion", title="M", parties=["Group A"], by="group", on="2021-03"
        )
        register.decide("motion", "debate", by="chair", party="Group A", on="2021-04~")

        _record_walk(register, random.Random(7))
    finally:
        register.close()
    # moved to the folder's v2, then a decision only v2 knows
    register = Register.at(str(path), str(V2), create=False)
    try:
        register.migrate("migrated", to=2, reason="v2")
        register.decide("migrated", "pause", by="council", party="A", on="2021-06")
        register.views.catch_up()
    finally:
        register.close()


@pytest.fixture(scope="module", params=["steps rows", "case rows"])
def story(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The story, its paths read from the steps read model's rows (every path given rows, and
    the cases' own rows as an earlier twinflow wrote them, which name no decisions) or from
    the `steps` of the cases' own rows (the default for paths this short)."""
    path = tmp_path_factory.mktemp("light") / "register.db"
    short = steps.SHORT
    steps.SHORT = 0 if request.param == "steps rows" else short
    try:
        _record(path)
    finally:
        steps.SHORT = short
    with closing(sqlite3.connect(path)) as conn:
        (held,) = conn.execute("SELECT COUNT(*) FROM twinflow_steps").fetchone()
        if request.param == "steps rows":
            for slug, stored in conn.execute("SELECT slug, steps FROM twinflow_cases").fetchall():
                earlier = json.dumps([entry[:5] for entry in json.loads(stored)])
                conn.execute("UPDATE twinflow_cases SET steps = ? WHERE slug = ?", (earlier, slug))
            conn.commit()
    assert (held > 0) == (request.param == "steps rows")
    return path


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """One moment for both paths, so that their `known_at` and default dates agree."""
    for module in (dates, queries):
        monkeypatch.setattr(module, "now", lambda: NOW)
        monkeypatch.setattr(module, "today", lambda: TODAY)


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each `status` was answered by the light path (True) or fell back (False)."""
    seen: list[bool] = []
    real = lightstatus.status

    def spy(*args: Any) -> Any:
        found = real(*args)
        seen.append(found is not None)
        return found

    monkeypatch.setattr(lightstatus, "status", spy)
    return seen


def _full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lightstatus, "status", lambda *args: None)


def _invoke(db: Path | str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)


def _outcome(result: Result) -> tuple[int, str, str]:
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------ the same answers


@pytest.mark.parametrize("slug", CASES)
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_answer_is_the_registers_on_every_date(story: Path, slug: str, lang: str) -> None:
    register = Register.at(str(story), create=False)
    try:
        for as_of in AS_OF:
            light = lightstatus.status(str(story), slug, as_of, lang)
            assert light is not None, as_of
            result, flow = light
            assert result == register.status(slug, as_of=as_of, lang=lang), as_of
            assert flow == register.stored_workflow(result["workflow"], result["version"])
    finally:
        register.close()


def test_the_story_has_uncertain_not_yet_open_and_migrated_answers(story: Path) -> None:
    found = {
        (slug, as_of): lightstatus.status(str(story), slug, as_of, "en")
        for slug in CASES
        for as_of in AS_OF
    }
    results = [light[0] for light in found.values() if light is not None]
    assert len(results) == len(found)
    assert any(not r["certain"] and "may not yet have taken effect" in r["note"] for r in results)
    assert any(r["state"] is None and r["note"].startswith("the case was opened") for r in results)
    migrated = found[("migrated", "2022")]
    assert migrated is not None and (migrated[0]["version"], migrated[0]["state"]) == (2, "paused")


@pytest.mark.parametrize("slug", CASES)
def test_the_command_prints_the_same_bytes_either_way(
    story: Path, slug: str, monkeypatch: pytest.MonkeyPatch, answers: list[bool]
) -> None:
    questions = [
        [*lang, "status", slug, *(["--as-of", as_of] if as_of else []), *fmt]
        for as_of in AS_OF[::3]
        for fmt in ([], ["--format", "json"], ["--format", "table"])
        for lang in ([], ["--lang", "nl"])
    ]
    light = [_outcome(_invoke(story, *q)) for q in questions]
    assert answers == [True] * len(questions)
    _full_path(monkeypatch)
    full = [_outcome(_invoke(story, *q)) for q in questions]
    for question, mine, theirs in zip(questions, light, full, strict=True):
        assert mine == theirs, question
    assert all(exit_code == 0 for exit_code, _, _ in light)


def test_an_unknown_language_is_refused_in_the_same_words(
    story: Path, monkeypatch: pytest.MonkeyPatch, answers: list[bool]
) -> None:
    light = _outcome(_invoke(story, "--lang", "fr", "status", "imprecise"))
    assert answers == [True]
    _full_path(monkeypatch)
    assert light == _outcome(_invoke(story, "--lang", "fr", "status", "imprecise"))
    assert light[0] == 2 and light[2].startswith("Error: no labels in language 'fr'")


# ------------------------------------------------------------------ what falls back


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.db"
    register = Register.at(str(path), create=True)
    try:
        register.open_case(
            "a-b", workflow="twinning", title="A–B", parties=["A", "B"], by="council", on="2000"
        )
        register.views.catch_up()
    finally:
        register.close()
    return path


def _execute(path: Path, statement: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(statement)


def test_a_pending_event_is_left_to_the_full_path_which_catches_up(
    small: Path, answers: list[bool]
) -> None:
    register = Register.at(str(small), create=False)
    register.decide("a-b", "suspend", by="council", party="B", on="2020")  # views behind
    register.close()
    assert lightstatus.status(str(small), "a-b", None, "en") is None
    result = _invoke(small, "status", "a-b")
    assert result.stdout.startswith("a-b: suspended since 2020 (#2)\n")
    assert lightstatus.status(str(small), "a-b", None, "en") is not None  # caught up now
    assert answers == [False, False, True]


def test_a_register_without_its_guards_is_refused_as_before(
    small: Path, monkeypatch: pytest.MonkeyPatch, answers: list[bool]
) -> None:
    _execute(small, "DROP TRIGGER stored_events_no_delete")
    light = _outcome(_invoke(small, "status", "a-b"))
    assert answers == [False]
    assert light[0] == 1
    assert light[2].startswith(
        f"Error: the register {small} has lost its append-only guard (stored_events_no_delete)"
    )
    _full_path(monkeypatch)
    assert _outcome(_invoke(small, "status", "a-b")) == light


def test_a_disabled_guard_is_refused_as_before(small: Path, answers: list[bool]) -> None:
    _execute(small, "DROP TRIGGER stored_events_no_update")
    _execute(
        small,
        "CREATE TRIGGER stored_events_no_update BEFORE UPDATE ON stored_events BEGIN SELECT 1; END",
    )
    result = _invoke(small, "status", "a-b")
    assert answers == [False]
    assert "lost its append-only guard (stored_events_no_update)" in result.stderr


def test_known_at_always_takes_the_full_path(small: Path, answers: list[bool]) -> None:
    result = _invoke(small, "status", "a-b", "--known-at", "2999-01-01")
    assert result.exit_code == 0, result.stderr
    assert answers == []  # not even asked
    assert result.stdout.startswith("a-b: active since 2000 (#1)\n")


def test_postgresql_is_left_to_the_full_path_without_a_connection() -> None:
    # nothing listens on port 1: a connection attempt would fail, not return None
    assert lightstatus.status("postgresql://nobody@127.0.0.1:1/none", "a-b", None, "en") is None


def test_the_command_answers_alike_on_both_backends(
    run: Invoke, db: str, monkeypatch: pytest.MonkeyPatch, answers: list[bool]
) -> None:
    opened = run(
        "open", "a-b", "--workflow", "twinning", "--title", "A–B", "--party", "A",
        "--party", "B", "--by", "council", "--on", "2000",
    )  # fmt: skip
    assert opened.exit_code == 0, opened.stderr
    first = _outcome(run("status", "a-b"))  # catches the read models up on either backend
    second = _outcome(run("status", "a-b", "--format", "json"))
    assert answers == [False, not db.startswith("postgresql://")]
    _full_path(monkeypatch)
    assert _outcome(run("status", "a-b")) == first
    assert _outcome(run("status", "a-b", "--format", "json")) == second


@pytest.mark.parametrize(
    ("slug", "error"),
    [
        ("c-d", "Error: unknown case 'c-d'"),
        ("Not A Slug", "Error: case 'Not A Slug' is not a valid name"),
    ],
)
def test_a_case_the_read_models_lack_gets_the_full_paths_error(
    small: Path, slug: str, error: str, monkeypatch: pytest.MonkeyPatch, answers: list[bool]
) -> None:
    light = _outcome(_invoke(small, "status", slug))
    assert answers == [False]
    assert light[2].startswith(error)
    _full_path(monkeypatch)
    assert _outcome(_invoke(small, "status", slug)) == light


@pytest.mark.parametrize(
    "setting", ["COMPRESSOR_TOPIC", "TWINFLOW_CIPHER_TOPIC", "TWINFLOW_SQLITE_DBNAME"]
)
def test_eventsourcing_settings_in_the_environment_are_left_to_the_full_path(
    small: Path, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting, "x")
    assert lightstatus.status(str(small), "a-b", None, "en") is None


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda path: None, "Error: no register at"),
        (lambda path: path.mkdir(), "is a folder"),
        (lambda path: path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000), "is damaged"),
        (lambda path: _execute(path, "CREATE TABLE other (x)"), "is not a twinflow database"),
    ],
    ids=["missing", "folder", "damaged", "foreign"],
)
def test_what_is_not_a_register_gets_the_full_paths_error(
    tmp_path: Path,
    make: Callable[[Path], None],
    error: str,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[bool],
) -> None:
    path = tmp_path / "x.db"
    make(path)
    light = _outcome(_invoke(path, "status", "a-b"))
    assert answers == [False]
    assert error in light[2]
    _full_path(monkeypatch)
    assert _outcome(_invoke(path, "status", "a-b")) == light


def test_a_register_before_its_schema_is_installed_is_left_to_the_full_path(
    small: Path,
) -> None:
    _execute(small, "UPDATE twinflow_meta SET value = 'old' WHERE key = 'schema'")
    assert lightstatus.status(str(small), "a-b", None, "en") is None


def test_the_light_path_writes_nothing(small: Path) -> None:
    before = sorted(p.name for p in small.parent.iterdir()), small.read_bytes()
    assert lightstatus.status(str(small), "a-b", "2020", "nl") is not None
    assert (sorted(p.name for p in small.parent.iterdir()), small.read_bytes()) == before


# ------------------------------------------------------------------ one source of truth


def test_the_names_it_reads_are_the_registers(small: Path) -> None:
    register = Register.at(str(small), create=False)
    try:
        assert register.events.recorder.events_table_name == lightstatus.EVENTS_TABLE  # type: ignore[attr-defined]
    finally:
        register.close()
    assert lightstatus.SNAPSHOTS_TABLE == snapshots.TABLE
    assert lightstatus.VIEW == views.VIEW
    assert lightstatus.REGISTERED == StoredWorkflow.Registered.TOPIC
    for name, version in (("twinning", 1), ("twinning", 2), ("motion", 1), ("x-y", 12)):
        assert lightstatus.workflow_key(name, version) == workflow_id(name, version).hex


def _settings_of(classes: tuple[type, ...]) -> Iterator[str]:
    for cls in classes:
        for key in dir(cls):
            value = getattr(cls, key)
            if key.isupper() and isinstance(value, str):
                yield value


def test_every_setting_eventsourcing_reads_is_known() -> None:
    from eventsourcing.application import Application
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.sqlite import SQLiteFactory

    read = set(_settings_of((Application, InfrastructureFactory, SQLiteFactory)))
    assert read | {"CIPHER_KEY"} <= lightstatus.EVENTSOURCING_SETTINGS
    assert f"{Events.name.upper()}_" == lightstatus.PREFIX


def test_a_light_answer_loads_neither_eventsourcing_nor_the_application(small: Path) -> None:
    code = """if True:
        import json, sys
        from twinflow.cli import cli
        try:
            cli(["--db", sys.argv[1], "status", "a-b"], prog_name="twinflow")
        except SystemExit:
            pass
        heavy = ("eventsourcing", "twinflow.application", "twinflow.domain", "edtf", "yaml")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """
    result = subprocess.run(
        [sys.executable, "-c", code, str(small)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("a-b: active since 2000 (#1)\n"), result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
