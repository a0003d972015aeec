"""Every bad input: one line `Error: ...` naming the value and the fix, exit 1 (a rule) or
2 (usage), no traceback, and nothing written to the register."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.definitions import bundled_dir
from twinflow.errors import StorageError

CASE = "coevorden-brest"
OPEN = (
    "open",
    CASE,
    "--workflow",
    "twinning",
    "--title",
    "Twinning Coevorden–Brest",
    "--party",
    "Coevorden",
    "--party",
    "Brest",
    "--by",
    "council",
    "--on",
    "2000",
)
SUSPEND = ("decide", CASE, "suspend", "--party", "Brest", "--by", "executive", "--on", "2022")
DATE_FORMS = (
    "use YYYY, YYYY-MM or YYYY-MM-DD, optionally with ? (uncertain), ~ (approximate) or % "
    "(both), or with unspecified digits as X (202X, 2022-XX)"
)
FIXTURES = Path(__file__).parent / "fixtures" / "workflows"


def stored(db: str) -> int:
    """How many events the register holds (0 where there is no register yet)."""
    try:
        register = Register.at(db, create=False)
    except StorageError:
        return 0
    try:
        return register.events.recorder.max_notification_id() or 0
    finally:
        register.close()


def snapshot(run: Invoke, db: str) -> tuple[int, str]:
    return stored(db), run("history", CASE, "--format", "json").stdout


def refused(result: Result, code: int, message: str, *, exact: bool = True) -> None:
    """Exit code, one `Error:` line (the message, or starting with it), no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert len(errors) == 1, result.stderr
    if exact:
        assert errors[0] == f"Error: {message}"
    else:
        assert errors[0].startswith(f"Error: {message}"), errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


@pytest.fixture
def story(run: Invoke) -> Invoke:
    """A register holding the case opened in 2000 and Brest's 2022 suspension."""
    assert run(*OPEN).exit_code == 0
    assert run(*SUSPEND).exit_code == 0
    return run


# ---------------------------------------------------------------- unknown names


@pytest.mark.parametrize(
    "args",
    [
        ("status", "brest-coevorden"),
        ("history", "brest-coevorden"),
        (
            "decide",
            "brest-coevorden",
            "freeze",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2024",
            "--reason",
            "x",
        ),
        ("note", "brest-coevorden", "visit", "--on", "2019", "--summary", "a visit"),
    ],
)
def test_an_unknown_case_is_refused_with_where_to_look(
    story: Invoke, db: str, args: tuple[str, ...]
) -> None:
    before = snapshot(story, db)
    refused(
        story(*args),
        1,
        "unknown case 'brest-coevorden': see `twinflow list` for the "
        "cases, or open it with `twinflow open brest-coevorden ...`",
    )
    assert snapshot(story, db) == before


def test_an_unknown_workflow_is_refused_naming_the_known_ones(run: Invoke, db: str) -> None:
    result = run(
        "open",
        "a-case",
        "--workflow",
        "twining",
        "--title",
        "T",
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    refused(result, 1, "unknown workflow 'twining': known workflows: ", exact=False)
    assert "twinning" in result.stderr and "--workflows DIR" in result.stderr
    assert stored(db) == 0
    if "://" not in db:
        assert not Path(db).exists()  # a refused first `open` leaves no file behind


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("decide", CASE, "suspended", "--party", "Brest", "--by", "council", "--on", "2023"),
            1,
            "unknown decision 'suspended' in workflow 'twinning' v1: known: suspend, freeze, "
            "make_dormant, resume, end, reaffirm",
        ),
        (
            ("decide", CASE, "reaffirm", "--party", "Brest", "--by", "college", "--on", "2023"),
            1,
            "unknown body kind 'college' in workflow 'twinning' v1: known: council, executive, "
            "committee, mayor, association (to reaffirm: council, executive, committee, mayor)",
        ),
        (
            ("decide", CASE, "reaffirm", "--party", "Minsk", "--by", "council", "--on", "2023"),
            1,
            "'Minsk' is not a party to case 'coevorden-brest': parties: Coevorden, Brest",
        ),
        (
            ("note", CASE, "visit", "--party", "Minsk", "--on", "2023", "--summary", "x"),
            1,
            "'Minsk' is not a party to case 'coevorden-brest': parties: Coevorden, Brest",
        ),
        (
            ("note", CASE, "meeting", "--on", "2023", "--summary", "x"),
            1,
            "unknown note kind 'meeting' in workflow 'twinning': known: visit, letter, "
            "statement, other",
        ),
    ],
    ids=["trigger", "body-kind", "party", "note-party", "note-kind"],
)
def test_an_unknown_name_is_refused_naming_the_known_ones(
    story: Invoke, db: str, args: tuple[str, ...], code: int, message: str
) -> None:
    before = snapshot(story, db)
    refused(story(*args), code, message)
    assert snapshot(story, db) == before


# ---------------------------------------------------------------- the workflow's rules


def test_a_trigger_not_allowed_from_the_state_lists_the_allowed_ones(
    story: Invoke, db: str
) -> None:
    assert (
        story(
            "decide",
            CASE,
            "freeze",
            "--party",
            "Coevorden",
            "--by",
            "executive",
            "--on",
            "2024-03",
            "--reason",
            "formal contacts stop",
        ).exit_code
        == 0
    )
    before = snapshot(story, db)
    refused(
        story(
            "decide",
            CASE,
            "make_dormant",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2025",
        ),
        1,
        "cannot make_dormant case 'coevorden-brest' effective 2025: it is 'frozen' since "
        "2024-03 (decision #3); allowed from 'frozen': freeze, resume, end, reaffirm",
    )
    assert snapshot(story, db) == before


def test_a_backdated_decision_that_breaks_a_later_one_is_refused_naming_both(
    run: Invoke, db: str
) -> None:
    assert run(*OPEN).exit_code == 0
    assert (
        run(
            "decide",
            CASE,
            "make_dormant",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2010",
        ).exit_code
        == 0
    )
    before = snapshot(run, db)
    refused(
        run(
            "decide",
            CASE,
            "suspend",
            "--party",
            "Brest",
            "--by",
            "executive",
            "--on",
            "2021-06",
            "--effective",
            "2005",
        ),
        1,
        "cannot record 'suspend' effective 2005 for case 'coevorden-brest': the later "
        "decision #2 'make_dormant' (effective 2010) would no longer be allowed, because "
        "the case would be 'suspended' by then (allowed from 'suspended': suspend, "
        "freeze, resume, end, reaffirm); check the dates, or correct or retract the "
        "later decision first",
    )
    assert snapshot(run, db) == before


def test_a_decision_effective_before_the_opening_is_refused(story: Invoke, db: str) -> None:
    before = snapshot(story, db)
    refused(
        story(
            "decide",
            CASE,
            "reaffirm",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2001",
            "--effective",
            "1999-12",
        ),
        1,
        "cannot record 'reaffirm' for case 'coevorden-brest' effective 1999-12: that is "
        "before the case was opened (2000, #1); check the date",
    )
    refused(
        story("note", CASE, "visit", "--on", "1999", "--summary", "too early"),
        1,
        "cannot note 'visit' on 1999 for case 'coevorden-brest': the case was opened "
        "2000; check the date",
    )
    assert snapshot(story, db) == before


@pytest.mark.parametrize(
    ("trigger", "by", "allowed"),
    [
        ("end", "mayor", "council, executive, committee, association"),
        ("freeze", "association", "council, executive, committee, mayor"),
    ],
)
def test_a_body_kind_not_allowed_for_its_trigger_names_the_allowed_kinds(
    story: Invoke, db: str, trigger: str, by: str, allowed: str
) -> None:
    before = snapshot(story, db)
    refused(
        story(
            "decide",
            CASE,
            trigger,
            "--party",
            "Coevorden",
            "--by",
            by,
            "--on",
            "2024",
            "--reason",
            "x",
        ),
        1,
        f"body kind {by!r} may not {trigger} a 'twinning' case: allowed: {allowed}",
    )
    assert snapshot(story, db) == before


@pytest.mark.parametrize("trigger", ["freeze", "end"])
def test_a_decision_lacking_a_required_field_is_refused(
    story: Invoke, db: str, trigger: str
) -> None:
    before = snapshot(story, db)
    refused(
        story("decide", CASE, trigger, "--party", "Coevorden", "--by", "council", "--on", "2024"),
        1,
        f"a {trigger!r} decision requires reason: give --reason",
    )
    refused(
        story(
            "decide",
            CASE,
            trigger,
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2024",
            "--reason",
            "",
        ),
        1,
        f"a {trigger!r} decision requires reason: give --reason",
    )
    assert snapshot(story, db) == before


def test_opening_an_existing_case_is_refused(story: Invoke, db: str) -> None:
    before = snapshot(story, db)
    refused(
        story(*OPEN),
        1,
        "case 'coevorden-brest' already exists: record decisions with "
        "`twinflow decide coevorden-brest ...`, or choose another name",
    )
    assert snapshot(story, db) == before


def test_a_dry_run_checks_and_writes_nothing(story: Invoke, db: str) -> None:
    before = snapshot(story, db)
    result = story(
        "decide",
        CASE,
        "freeze",
        "--party",
        "Coevorden",
        "--by",
        "executive",
        "--on",
        "2024-03",
        "--reason",
        "formal contacts stop",
        "--dry-run",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "would record freeze on coevorden-brest (#3), effective 2024-03: suspended -> frozen\n"
    )
    assert snapshot(story, db) == before
    refused(
        story(
            "decide",
            CASE,
            "make_dormant",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2024",
            "--dry-run",
        ),
        1,
        "cannot make_dormant case 'coevorden-brest' effective 2024: it is 'suspended' "
        "since 2022 (decision #2); allowed from 'suspended': suspend, freeze, resume, "
        "end, reaffirm",
    )
    assert snapshot(story, db) == before


def test_the_second_sides_suspension_is_recorded_without_a_state_change(run: Invoke) -> None:
    assert run(*OPEN).exit_code == 0
    first = run(
        "decide",
        CASE,
        "suspend",
        "--party",
        "Coevorden",
        "--by",
        "executive",
        "--on",
        "2020~",
        "--scope",
        "official contacts, until further notice",
    )
    assert first.stdout == (
        "recorded suspend on coevorden-brest (#2), effective 2020~: active -> suspended\n"
    )
    second = run(*SUSPEND)
    assert second.exit_code == 0, second.stderr
    assert second.stdout == (
        "recorded suspend on coevorden-brest (#3), effective 2022: stays suspended\n"
    )
    status = json.loads(run("status", CASE, "--as-of", "2023", "--format", "json").stdout)
    assert (status["state"], status["certain"], status["since"]) == ("suspended", True, "2020~")
    history = json.loads(run("history", CASE, "--format", "json").stdout)
    assert [(h["party"], h["state_before"], h["state_after"]) for h in history[1:]] == [
        ("Coevorden", "active", "suspended"),
        ("Brest", "suspended", "suspended"),
    ]


def test_reaffirm_keeps_the_state(story: Invoke) -> None:
    result = story(
        "decide",
        CASE,
        "reaffirm",
        "--party",
        "Coevorden",
        "--by",
        "council",
        "--on",
        "2023-05-11",
        "--reason",
        "informal contacts continue",
    )
    assert result.stdout == (
        "recorded reaffirm on coevorden-brest (#3), effective 2023-05-11: stays suspended\n"
    )
    status = json.loads(story("status", CASE, "--as-of", "2024", "--format", "json").stdout)
    assert (status["state"], status["since"], status["since_seq"]) == ("suspended", "2022", 2)


# ---------------------------------------------------------------- malformed values


@pytest.mark.parametrize("bad", ["2022-13-01", "yesterday", "2022-02-30"])
@pytest.mark.parametrize(
    "command",
    [
        ("decide", CASE, "reaffirm", "--party", "Brest", "--by", "council", "--on"),
        (
            "decide",
            CASE,
            "reaffirm",
            "--party",
            "Brest",
            "--by",
            "council",
            "--on",
            "2023",
            "--effective",
        ),
        ("note", CASE, "visit", "--summary", "x", "--on"),
        ("status", CASE, "--as-of"),
        ("history", CASE, "--as-of"),
        ("list", "--as-of"),
    ],
    ids=["decide-on", "decide-effective", "note-on", "status", "history", "list"],
)
def test_an_impossible_or_unparseable_date_is_a_usage_error(
    story: Invoke, db: str, command: tuple[str, ...], bad: str
) -> None:
    before = snapshot(story, db)
    option = command[-1]
    refused(
        story(*command, bad),
        2,
        f"Invalid value for '{option}': {bad!r} is not a valid date: {DATE_FORMS} "
        "(e.g. 2022, 2024-03, 2024-03-14)",
    )
    assert snapshot(story, db) == before


def test_a_first_open_with_a_bad_date_creates_no_register(run: Invoke, db: str) -> None:
    result = run(*OPEN[:-1], "2000-02-30")
    refused(result, 2, "Invalid value for '--on': '2000-02-30' is not a valid date", exact=False)
    assert stored(db) == 0


@pytest.mark.parametrize(
    ("known_at", "message"),
    [
        (
            "2024-03-14T09:30",
            "Invalid value for '--known-at': '2024-03-14T09:30' has no time "
            "zone: add Z or an offset such as +01:00 (e.g. 2024-03-14T09:30Z), "
            "or give a plain date YYYY-MM-DD",
        ),
        (
            "2024-03",
            "Invalid value for '--known-at': '2024-03' is not a timestamp: use ISO 8601 "
            "with a zone, e.g. 2024-03-14T09:30:00Z or 2024-03-14T10:30:00+01:00, or a "
            "plain date YYYY-MM-DD",
        ),
    ],
)
@pytest.mark.parametrize("command", ["status", "history"])
def test_a_known_at_without_a_zone_that_is_not_a_plain_date_is_a_usage_error(
    story: Invoke, command: str, known_at: str, message: str
) -> None:
    refused(story(command, CASE, "--known-at", known_at), 2, message)


@pytest.mark.parametrize("title", ["", "   "])
def test_an_empty_title_is_a_usage_error(run: Invoke, db: str, title: str) -> None:
    result = run(
        "open",
        "a-case",
        "--workflow",
        "twinning",
        "--title",
        title,
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    refused(result, 2, "the title is empty: give --title, e.g. 'Twinning Coevorden–Brest'")
    assert stored(db) == 0


@pytest.mark.parametrize(
    "slug",
    [
        "Coevorden-Brest",
        "coevorden_brest",
        "coevorden brest",
        "brest-",
        "brest/coevorden",
        "coevorden-brest-" + "x" * 80,
    ],
)
def test_a_bad_slug_is_a_usage_error(run: Invoke, db: str, slug: str) -> None:
    result = run(
        "open",
        slug,
        "--workflow",
        "twinning",
        "--title",
        "T",
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    refused(
        result,
        2,
        f"case {slug!r} is not a valid name: use lower-case letters, digits and "
        "hyphens, e.g. coevorden-brest",
    )
    assert stored(db) == 0


def test_a_bad_slug_is_named_as_such_when_reading_too(story: Invoke) -> None:
    refused(
        story("status", "Coevorden-Brest"),
        2,
        "case 'Coevorden-Brest' is not a valid name: "
        "use lower-case letters, digits and hyphens, e.g. coevorden-brest",
    )


@pytest.mark.parametrize(
    ("parties", "message"),
    [
        (("Brest", "Brest"), "a party is named twice in Brest, Brest: name each once"),
        (("Brest", " "), "a case needs at least one party: give --party NAME, once per party"),
    ],
)
def test_bad_parties_are_a_usage_error(
    run: Invoke, db: str, parties: tuple[str, ...], message: str
) -> None:
    args = [a for p in parties for a in ("--party", p)]
    refused(
        run(
            "open",
            "a-case",
            "--workflow",
            "twinning",
            "--title",
            "T",
            *args,
            "--by",
            "council",
            "--on",
            "2000",
        ),
        2,
        message,
    )
    assert stored(db) == 0


# ---------------------------------------------------------------- workflow files


def test_a_malformed_workflow_file_is_refused_naming_its_defects(
    tmp_path: Path, run: Invoke, db: str
) -> None:
    shutil.copy(FIXTURES / "invalid" / "malformed.yaml", tmp_path)
    result = run(
        "--workflows",
        str(tmp_path),
        "open",
        "a-case",
        "--workflow",
        "malformed",
        "--title",
        "T",
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    refused(
        result,
        1,
        f"workflow file {tmp_path / 'malformed.yaml'} has 1 defect(s); fix them and try again:",
    )
    assert f"  {tmp_path / 'malformed.yaml'}:5: is not valid YAML" in result.stderr
    assert stored(db) == 0


def test_an_invalid_workflow_file_is_refused_naming_every_defect(
    tmp_path: Path, run: Invoke, db: str
) -> None:
    shutil.copy(FIXTURES / "invalid" / "machine.yaml", tmp_path)
    result = run(
        "--workflows",
        str(tmp_path),
        "open",
        "a-case",
        "--workflow",
        "machine",
        "--title",
        "T",
        "--party",
        "A",
        "--by",
        "council",
        "--on",
        "2000",
    )
    refused(
        result,
        1,
        f"workflow file {tmp_path / 'machine.yaml'} has 7 defect(s); fix them and try again:",
    )
    assert result.stderr.count(f"  {tmp_path / 'machine.yaml'}:") == 7
    assert stored(db) == 0


@pytest.fixture
def own_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "workflows"
    folder.mkdir()
    shutil.copy(bundled_dir() / "twinning.yaml", folder)
    return folder


def test_a_workflow_changed_without_a_version_bump_is_refused(
    run: Invoke, db: str, own_copy: Path
) -> None:
    mine = ("--workflows", str(own_copy))
    assert run(*mine, *OPEN).exit_code == 0
    path = own_copy / "twinning.yaml"
    path.write_text(
        path.read_text().replace(
            "by: [council, executive, committee, mayor]\n    labels: {en: suspend",
            "by: [council]\n    labels: {en: suspend",
        )
    )
    before = snapshot(run, db)
    message = (
        f"workflow file {path} changed since version 1 was first used by a case, but "
        "its version is still 1: bump `version` to 2 (cases stay on the version they "
        "were opened with), or undo the change"
    )
    refused(run(*mine, *SUSPEND), 1, message)
    refused(run(*mine, "note", CASE, "visit", "--on", "2019", "--summary", "x"), 1, message)
    refused(
        run(
            *mine,
            "open",
            "coevorden-kobryn",
            "--workflow",
            "twinning",
            "--title",
            "T",
            "--party",
            "Coevorden",
            "--by",
            "council",
            "--on",
            "2001",
        ),
        1,
        message,
    )
    assert snapshot(run, db) == before
    # Reading still answers from the stored definition.
    assert json.loads(run(*mine, "status", CASE, "--format", "json").stdout)["state"] == "active"

    # With the version bumped, new cases use v2 and the old case stays judged by v1.
    path.write_text(path.read_text().replace("version: 1", "version: 2"))
    assert run(*mine, *SUSPEND).stdout.endswith("active -> suspended\n")
    opened = run(
        *mine,
        "open",
        "coevorden-kobryn",
        "--workflow",
        "twinning",
        "--title",
        "T",
        "--party",
        "Coevorden",
        "--party",
        "Kobryn",
        "--by",
        "council",
        "--on",
        "2001",
    )
    assert opened.stdout == "opened coevorden-kobryn (#1): twinning v2, active from 2001\n"
    refused(
        run(
            *mine,
            "decide",
            "coevorden-kobryn",
            "suspend",
            "--party",
            "Kobryn",
            "--by",
            "executive",
            "--on",
            "2022",
        ),
        1,
        "body kind 'executive' may not suspend a 'twinning' case: allowed: council",
    )


# ---------------------------------------------------------------- the database itself


def twinflow(db: Path | str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture
def actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINFLOW_ACTOR", "clerk-a")
    monkeypatch.delenv("TWINFLOW_DB", raising=False)


@pytest.mark.usefixtures("actor")
def test_a_folder_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write into any folder; see the read-only file system test")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        refused(
            twinflow(folder / "twinflow.db", *OPEN),
            1,
            f"cannot create the register '{folder / 'twinflow.db'}': the folder "
            f"'{folder}' is not writable; choose another --db",
        )
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.usefixtures("actor")
def test_a_place_where_no_file_can_be_created_is_refused() -> None:
    path = Path("/proc/twinflow-test.db")  # no one, not even root, creates files in /proc
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    result = twinflow(path, *OPEN)
    refused(result, 1, "", exact=False)
    assert str(path) in result.stderr
    assert "choose another --db" in result.stderr
    assert "backup" not in result.stderr  # nothing to restore: the file was never there
    assert not path.exists()


@pytest.mark.usefixtures("actor")
def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    refused(
        twinflow(tmp_path / "nowhere" / "twinflow.db", *OPEN),
        1,
        f"cannot create the register '{tmp_path / 'nowhere' / 'twinflow.db'}': the folder "
        f"'{tmp_path / 'nowhere'}' does not exist; create it first",
    )
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.usefixtures("actor")
@pytest.mark.parametrize("args", [OPEN, ("status", CASE), ("list",)])
def test_a_text_file_is_not_a_twinflow_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("minutes of the council meeting\n")
    refused(
        twinflow(path, *args),
        1,
        f"'{path}' is not a twinflow database (not SQLite at all): point --db at your "
        "register, or choose a new file name",
    )
    assert path.read_text() == "minutes of the council meeting\n"


@pytest.mark.usefixtures("actor")
@pytest.mark.parametrize("args", [OPEN, ("status", CASE), ("list",)])
def test_a_sqlite_file_with_other_tables_is_not_a_twinflow_database(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    path = tmp_path / "budget.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE budget (year INTEGER, amount REAL)")
    content = path.read_bytes()
    refused(
        twinflow(path, *args),
        1,
        f"'{path}' is not a twinflow database (it holds other tables: budget): choose another --db",
    )
    assert path.read_bytes() == content


@pytest.mark.usefixtures("actor")
def test_reading_a_register_that_does_not_exist_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "twinflow.db"
    for args in (("status", CASE), ("history", CASE), ("list",), SUSPEND):
        refused(
            twinflow(path, *args),
            1,
            f"no register at '{path}': record something first (twinflow open ...), or "
            "point --db / TWINFLOW_DB at your register",
        )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def register_file(tmp_path: Path, actor: None) -> Path:
    path = tmp_path / "twinflow.db"
    assert twinflow(path, *OPEN).exit_code == 0
    return path


@pytest.fixture
def writer(register_file: Path) -> Iterator[sqlite3.Connection]:
    """Another writer holding the register's write lock."""
    conn = sqlite3.connect(register_file, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def test_a_locked_register_in_rollback_journal_mode_is_refused_clearly(
    register_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register another tool switched out of WAL mode, held by another writer: eventsourcing
    asks for WAL as it connects, which SQLite refuses while the lock is held. One clear
    line, not a traceback, and nothing written."""
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", "1")
    other = sqlite3.connect(register_file, isolation_level=None)
    try:
        assert other.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
        other.execute("BEGIN IMMEDIATE")
        for args in (SUSPEND, ("list",)):
            refused(
                twinflow(register_file, *args),
                1,
                f"the register is busy: another twinflow is writing ({register_file}); try again",
            )
        other.execute("ROLLBACK")
    finally:
        other.close()
    history = json.loads(twinflow(register_file, "history", CASE, "--format", "json").stdout)
    assert [h["trigger"] for h in history] == ["open"]


def test_a_register_locked_beyond_the_timeout_is_refused(
    register_file: Path, writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", "1")
    for args in (SUSPEND, ("note", CASE, "visit", "--on", "2019", "--summary", "x")):
        refused(
            twinflow(register_file, *args),
            1,
            f"the register is busy: another twinflow is writing ({register_file}); try again",
        )
    writer.execute("ROLLBACK")
    history = json.loads(twinflow(register_file, "history", CASE, "--format", "json").stdout)
    assert [h["trigger"] for h in history] == ["open"]


def test_reading_does_not_wait_for_a_writer(
    register_file: Path, writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", "1")
    result = twinflow(register_file, "status", CASE, "--as-of", "2001")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("coevorden-brest: active since 2000 (#1)\n")


def test_a_writer_waits_for_the_lock_within_the_timeout(
    register_file: Path, writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", "10")
    release = threading.Timer(0.3, lambda: writer.execute("ROLLBACK"))
    release.start()
    try:
        result = twinflow(register_file, *SUSPEND)
    finally:
        release.join()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("active -> suspended\n")


@pytest.mark.usefixtures("actor")
@pytest.mark.parametrize("timeout", ["0", "soon", "1.5"])
def test_a_bad_lock_timeout_is_a_usage_error(
    register_file: Path, monkeypatch: pytest.MonkeyPatch, timeout: str
) -> None:
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", timeout)
    refused(
        twinflow(register_file, *SUSPEND),
        2,
        f"TWINFLOW_LOCK_TIMEOUT {timeout!r} is not a whole number of seconds: use e.g. 5",
    )


def test_an_eventsourcing_setting_in_the_environment_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINFLOW_PERSISTENCE_MODULE", "x")
    path = tmp_path / "register.db"
    args = ["--db", str(path), "open", "a-b", "--workflow", "twinning", "--title", "A-B"]
    args += ["--party", "A", "--party", "B", "--by", "council", "--on", "2000"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Failed to resolve persistence module topic: 'x'")
    assert "unset that environment variable" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not path.exists()
