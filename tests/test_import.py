"""Backfill from a spreadsheet: one transaction, every bad row reported, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Invoke
from twinflow import bulk, demo
from twinflow.application import Register
from twinflow.errors import BadFile, ConflictError
from twinflow.exchange import import_file

FIXTURE = Path(__file__).parent / "fixtures" / "twinnings.csv"
HEADER = "case,workflow,action,by,party,decided_on,effective_on,reason,title,parties,summary\n"


def log(register: Register) -> list[tuple[Any, ...]]:
    """Every stored record, as the store holds it."""
    found = register.events.recorder.select_notifications(start=1, limit=100_000)
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in found]


def write(folder: Path, text: str, name: str = "rows.csv", encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def problems(register: Register, path: Path, **options: Any) -> list[str]:
    before = log(register)
    with pytest.raises(BadFile) as refused:
        import_file(register, path, actor="clerk-a", **options)
    assert log(register) == before, "a refused file must write nothing"
    return [str(p) for p in refused.value.problems]


def state(register: Register, case: str, as_of: str) -> tuple[str | None, bool]:
    found = register.status(case, as_of=as_of)
    return found["state"], found["certain"]


# ---------------------------------------------------------------------------- the fixture

AS_OF = [
    ("coevorden-brest", "1999", (None, True)),
    ("coevorden-brest", "2021-06", ("active", True)),
    ("coevorden-brest", "2022-06-01", ("suspended", False)),
    ("coevorden-brest", "2023-06", ("suspended", True)),
    ("coevorden-brest", "2024-06", ("frozen", True)),
    ("groningen-kaliningrad", "1991-06-11", (None, True)),
    ("groningen-kaliningrad", "2000", ("active", True)),
    ("groningen-kaliningrad", "2014-03-15", ("suspended", False)),
    ("groningen-kaliningrad", "2014-05", ("suspended", True)),
    ("groningen-kaliningrad", "2022-03-02", ("suspended", True)),
    ("groningen-kaliningrad", "2022-03-03", ("ended", True)),
    ("zwolle-lueneburg", "2016", ("active", True)),
    ("hoogeveen-gryfino", "1988-06", ("active", False)),
    ("hoogeveen-gryfino", "1995", ("active", True)),
    ("hoogeveen-gryfino", "2009-06", ("dormant", False)),
    ("hoogeveen-gryfino", "2011-06", ("dormant", True)),
]


def test_a_realistic_spreadsheet_is_imported_and_answers_as_of_several_dates(
    register: Register,
) -> None:
    summary = import_file(register, FIXTURE, actor="clerk-a")

    assert str(summary) == (
        "imported twinnings.csv: 4 case(s) opened, 0 existing case(s) extended, "
        "7 decision(s), 4 note(s) (16 events, one transaction)"
    )
    for case, as_of, expected in AS_OF:
        assert state(register, case, as_of) == expected, (case, as_of)
    history = register.history("coevorden-brest")
    # the freeze is the file's first row and the open its second: placed by date
    assert [(h["seq"], h["trigger"], h["state_before"], h["state_after"]) for h in history] == [
        (1, "open", None, "active"),
        (2, "visit", "active", "active"),
        (3, "letter", "active", "active"),
        (4, "suspend", "active", "suspended"),
        (5, "freeze", "suspended", "frozen"),
    ]
    freeze = history[-1]
    assert freeze["sources"] == [
        "https://www.coevorden.nl/nieuws/brest",
        "https://example.org/raad/2024-03-freeze",
    ]
    assert freeze["party"] == "Coevorden"
    # as for every command: on PostgreSQL the database role records, for the named clerk
    assert (freeze["actor"], freeze["on_behalf_of"]) == register.identity("clerk-a")
    assert history[2]["summary"] == (
        'The mayor writes on human rights after the elections; "the relationship is disturbed"'
    )
    ended = register.history("groningen-kaliningrad")
    # the partner's suspension first, then Groningen's own: no second state change
    assert [(h["party"], h["state_before"], h["state_after"]) for h in ended[1:3]] == [
        ("Kaliningrad", "active", "suspended"),
        ("Groningen", "suspended", "suspended"),
    ]
    assert (ended[-1]["effective_on"], ended[-1]["vote"], ended[-1]["published_on"]) == (
        "2022-03-03",
        "35-4",
        "2022-03-04",
    )
    visit = register.history("zwolle-lueneburg")[-1]
    assert visit["summary"] == (
        "Hanseatic days: a Lüneburg delegation in Zwolle,\nwith a choir and a brass band"
    )
    assert register.verify()["holds"]


def test_one_bad_row_fails_the_whole_file_and_nothing_is_written(
    register: Register, tmp_path: Path
) -> None:
    text = FIXTURE.read_text() + (
        "resume,groningen-kaliningrad,2023,,council,Groningen,gemeenteraad Groningen,,,,"
        "talks again,,,,,,\n"
    )
    path = write(tmp_path, text)

    assert problems(register, path) == [
        "line 18: action 'resume' cannot be taken on case 'groningen-kaliningrad' effective "
        "2023: it is 'ended' since 2022-03-03 (line 9); allowed from 'ended': none"
    ]
    assert log(register) == []
    assert register.list_cases() == []


def test_every_bad_row_is_reported_with_line_column_value_and_reason(
    register: Register, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        HEADER
        + "a-b,twinning,open,council,,2000,,,A–B,A; B,\n"
        + "a-b,,suspend,executive,A,2022-13,,,,,\n"
        + "a-b,,freeze,executive,A,2023,,,,,\n"
        + "a-b,,frobnicate,executive,A,2023,,,,,\n"
        + "a-b,,suspend,parliament,A,2023,,,,,\n"
        + "a-b,,note:gossip,,,2023,,,,,heard in town\n"
        + "a-b,,suspend,council,C,2023,,,,,\n"
        + "a-b,,resume,council,A,1999,,,,,\n"
        + "a-b,twinning,open,council,,2001,,,A–B,A; B,\n"
        + "c-d,,suspend,council,C,2001,,,,,\n"
        + "e-f,twining,open,council,,2001,,,E–F,E; F,\n"
        + "g-h,twinning,open,council,,2001,,,G–H,G; H,\n"
        + "g-h,,end,council,G,2005,,over,,,\n"
        + "g-h,,resume,council,G,2006,,,,,\n"
        + "g-h,,note:visit,,G,1990,,,,,too early\n"
        + "Bad Case,,open,council,,2001,,,,,\n",
    )

    assert problems(register, path) == [
        "line 3: decided_on '2022-13' is not a valid date: use YYYY, YYYY-MM or YYYY-MM-DD, "
        "optionally with ? (uncertain), ~ (approximate) or % (both), or with unspecified "
        "digits as X (202X, 2022-XX) (e.g. 2022, 2024-03, 2024-03-14)",
        "line 4: reason is empty: 'freeze' requires it",
        "line 5: action 'frobnicate' is not a decision of workflow 'twinning' v1: known: "
        "suspend, freeze, make_dormant, resume, end, reaffirm (or open, or note:KIND)",
        "line 6: by 'parliament' is not a body kind of workflow 'twinning': known: council, "
        "executive, committee, mayor, association",
        "line 7: action 'note:gossip' is not a note kind of workflow 'twinning': known: "
        "note:visit, note:letter, note:statement, note:other",
        "line 8: party 'C' is not a party to case 'a-b': parties: A; B",
        "line 9: decided_on '1999' is before case 'a-b' was opened (2000, line 2): check the date",
        "line 10: action 'open' opens case 'a-b' a second time (line 2 opens it): "
        "keep one open row",
        "line 11: case 'c-d' is not in the register and no row of the file opens it: add an "
        "open row for it, or check the name",
        "line 12: workflow 'twining' is not a known workflow: known: "
        + ", ".join(sorted(register.library.files())),
        "line 15: action 'resume' cannot be taken on case 'g-h' effective 2006: it is 'ended' "
        "since 2005 (line 14); allowed from 'ended': none",
        "line 16: decided_on '1990' is before case 'g-h' was opened (2001, line 13): "
        "check the date",
        "line 17: case 'Bad Case' is not a case name: use lower-case letters, digits and hyphens",
        "line 17: parties is empty: an open row names the parties, separated by ;",
        "line 17: workflow is empty: an open row needs it",
        "line 17: title is empty: an open row needs it",
    ]


def test_the_problems_carry_line_column_and_value_apart(register: Register, tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a-b,twinning,open,council,,2000-02-30,,,A–B,A; B,\n")
    with pytest.raises(BadFile) as refused:
        import_file(register, path)
    (problem,) = refused.value.problems
    assert (problem.line, problem.column, problem.value) == (2, "decided_on", "2000-02-30")  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the file itself


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "case,action,decided_on,reasons\n",
            "line 1: column 'reasons' is not a twinflow column: did you mean 'reason'? columns: "
            "case, workflow, action, by, party, body_name, decided_on, effective_on, "
            "published_on, scope, vote, reference, reason, source, title, parties, summary",
        ),
        (
            "case,action,by\n",
            "line 1: the header lacks the column(s) decided_on: add them",
        ),
        ("case,action,decided_on,case\n", "line 1: case is named twice in the header: keep one"),
        (
            "coevorden-brest,open,2000\n",
            "line 1: the first line is not a header: it must name the columns, e.g. "
            "case,action,decided_on (columns: case, workflow, action, by, party, body_name, "
            "decided_on, effective_on, published_on, scope, vote, reference, reason, source, "
            "title, parties, summary)",
        ),
        ("", "line 1: the file is empty: the first line must name the columns"),
    ],
)
def test_a_bad_header_is_reported_and_no_row_is_read(
    register: Register, tmp_path: Path, header: str, expected: str
) -> None:
    path = write(tmp_path, header + "a-b,open,2000\n" if header else "")
    assert problems(register, path) == [expected]


def test_latin1_bytes_are_reported_with_their_line(register: Register, tmp_path: Path) -> None:
    text = (
        HEADER
        + "zwolle-lueneburg,twinning,open,council,,1975,,,Zwolle–Lüneburg,Zwolle; Lüneburg,\n"
    )
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.replace("–", "-").encode("latin-1"))

    assert problems(register, path) == [
        "line 2: the line is not UTF-8 (byte 0xfc in 'cil,,1975,,,Zwolle-L\ufffdneburg,Zwolle; "
        "L\ufffdneb'): save the file as UTF-8 (in a spreadsheet: CSV UTF-8) and import "
        "it again"
    ]


def test_semicolons_a_bom_and_any_column_order_are_read(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + "parties;title;decided_on;action;case;by;workflow\r\n"
        '"Zwolle, Overijssel; Lüneburg";Twinning;1975;open;zwolle-lueneburg;council;twinning\r\n'
        "".encode()
    )
    import_file(register, path)
    assert register.status("zwolle-lueneburg", as_of="1980")["parties"] == [
        "Zwolle, Overijssel",
        "Lüneburg",
    ]


def test_line_numbers_count_the_lines_of_multi_line_cells(
    register: Register, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        HEADER
        + 'a-b,twinning,open,council,,2000,,"founded\nafter\nvisits",A–B,A; B,\n'
        + "a-b,,suspend,council,A,20000,,,,,\n",
    )
    assert problems(register, path) == [
        "line 5: decided_on '20000' is not a valid date: use YYYY, YYYY-MM or YYYY-MM-DD, "
        "optionally with ? (uncertain), ~ (approximate) or % (both), or with unspecified "
        "digits as X (202X, 2022-XX) (e.g. 2022, 2024-03, 2024-03-14)"
    ]


def test_cells_a_row_has_no_place_for_are_refused_not_dropped(
    register: Register, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        HEADER
        + "a-b,twinning,open,council,,2000,,,A–B,A; B,\n"
        + "a-b,,note:visit,council,A,2001,,why,,,a visit\n"
        + "a-b,,suspend,council,A,2002,,,New title,,\n"
        + "a-b,,reaffirm,council,A,2003,,,,,a summary\n",
    )
    assert problems(register, path) == [
        "line 3: by 'council' is not used on a note row: leave it empty, or say it in summary",
        "line 3: reason 'why' is not used on a note row: leave it empty, or say it in summary",
        "line 4: title 'New title' is only used on an open row: leave it empty",
        "line 5: summary 'a summary' is only used on a note row: put it in reason",
    ]


# ---------------------------------------------------------------------------- dry run


def test_a_dry_run_checks_everything_and_writes_nothing(register: Register) -> None:
    summary = import_file(register, FIXTURE, dry_run=True)
    assert str(summary) == (
        "checked twinnings.csv: 15 row(s) are fine and would give 4 case(s) opened, 0 existing "
        "case(s) extended, 7 decision(s), 4 note(s) (16 events); nothing written (dry run)"
    )
    assert log(register) == []


# ---------------------------------------------------------------------------- existing cases


def test_cases_in_the_register_take_new_rows_judged_with_their_recorded_timeline(
    register: Register, tmp_path: Path
) -> None:
    demo.record(register)  # coevorden-brest: opened 2000, ..., suspended 2022, frozen 2024-03
    good = write(
        tmp_path,
        HEADER
        + "coevorden-brest,,note:visit,,Brest,2018-05,,,,,Brest's mayor in Coevorden\n"
        + "coevorden-brest,,reaffirm,council,Coevorden,2024-09,,,,,\n",
        "good.csv",
    )
    summary = import_file(register, good)
    assert (summary.cases_opened, summary.cases_extended, summary.events) == (0, 1, 2)
    history = register.history(demo.CASE)
    assert [(h["seq"], h["trigger"]) for h in history][-2:] == [(6, "freeze"), (8, "reaffirm")]
    assert [h["trigger"] for h in history][:3] == ["open", "visit", "visit"]

    bad = write(
        tmp_path,
        HEADER
        + "coevorden-brest,twinning,open,council,,2000,,,Again,Coevorden; Brest,\n"
        + "coevorden-brest,,end,council,Coevorden,2023,,over,,,\n",
        "bad.csv",
    )
    assert problems(register, bad) == [
        "line 2: action 'open' opens case 'coevorden-brest' a second time: the register holds "
        "it since 2000; remove this row",
        "line 3: action 'end' cannot be taken on case 'coevorden-brest' effective 2023: the "
        "recorded later decision #6 'freeze' (effective 2024-03) would no longer be allowed, "
        "because the case would be 'ended' by then (allowed from 'ended': none); check the dates",
    ]


def test_a_writer_that_got_there_first_fails_the_whole_write(register: Register) -> None:
    import_file(register, FIXTURE)
    before = log(register)
    first = register.events.recorder.select_notifications(start=1, limit=2)
    with pytest.raises(ConflictError, match="another writer recorded on the same cases"):
        bulk.append(register, [first], 2)
    assert log(register) == before


# ---------------------------------------------------------------------------- NDJSON


def test_ndjson_takes_the_same_fields_and_reports_bad_lines(
    register: Register, tmp_path: Path
) -> None:
    rows = [
        {
            "case": "a-b",
            "action": "open",
            "workflow": "twinning",
            "by": "council",
            "decided_on": 2000,
            "title": "A–B",
            "parties": ["A", "B"],
        },
        {
            "case": "a-b",
            "action": "suspend",
            "by": "council",
            "party": "B",
            "decided_on": "2022",
            "source": ["https://example.org/1", "https://example.org/2"],
        },
        {
            "case": "a-b",
            "action": "note:visit",
            "decided_on": "2019",
            "summary": "a visit",
            "scope": None,
        },
    ]
    good = write(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), "rows.ndjson")
    import_file(register, good)
    assert state(register, "a-b", "2023") == ("suspended", True)
    assert register.history("a-b")[-1]["sources"] == [
        "https://example.org/1",
        "https://example.org/2",
    ]

    bad = write(
        tmp_path,
        '{"case": "c-d", "action": "open", "colour": "red"}\n'
        '["not", "an", "object"]\n'
        '{"case": "c-d", "action": "open", "decided_on": true}\n'
        '{"case": "c-d", "action": "open", "decided',
        "bad.ndjson",
    )
    assert problems(register, bad) == [
        "line 1: key 'colour' is not a twinflow column: columns: case, workflow, action, by, "
        "party, body_name, decided_on, effective_on, published_on, scope, vote, reference, "
        "reason, source, title, parties, summary",
        'line 2: the line is not a JSON object: write {"case": ...}',
        "line 3: decided_on 'true' must be a string (or null: not given)",
        "line 4: the line is not a complete JSON object (Unterminated string starting at, "
        "column 35); the file looks truncated: each line must be one JSON object with the "
        "import columns as keys",
    ]


def test_a_backup_given_to_import_is_pointed_to_restore(register: Register, tmp_path: Path) -> None:
    from twinflow.exporter import export

    import_file(register, FIXTURE)
    backup = write(tmp_path, "".join(export(register, "ndjson")), "backup.ndjson")
    assert problems(register, backup) == [
        "line 1: the file is a backup (twinflow export --format ndjson), not rows to import: "
        "put it back with `twinflow restore`"
    ]


# ---------------------------------------------------------------------------- the command


def test_import_through_the_cli(run: Invoke, tmp_path: Path) -> None:
    result = run("import", str(FIXTURE))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "imported twinnings.csv: 4 case(s) opened, 0 existing case(s) extended, "
        "7 decision(s), 4 note(s) (16 events, one transaction)\n"
    )
    listing = json.loads(run("list", "--as-of", "2024-06", "--format", "json").stdout)
    assert {row["case"]: row["state"] for row in listing} == {
        "coevorden-brest": "frozen",
        "groningen-kaliningrad": "ended",
        "hoogeveen-gryfino": "dormant",
        "zwolle-lueneburg": "active",
    }


def test_a_bad_file_through_the_cli_exits_1_with_the_report_on_stderr(
    run: Invoke, tmp_path: Path
) -> None:
    path = write(tmp_path, HEADER + "a-b,,suspend,council,A,2022,,,,,\n")
    result = run("import", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: rows.csv has 1 problem(s); nothing was imported. Fix them and import the file "
        "again:\n  line 2: case 'a-b' is not in the register and no row of the file opens it: "
        "add an open row for it, or check the name\n"
    )
    assert "Traceback" not in result.stderr


def test_a_refused_import_into_a_new_file_leaves_no_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from twinflow.cli import cli

    path = write(tmp_path, HEADER + "a-b,,suspend,council,A,2022,,,,,\n")
    db = tmp_path / "new.db"
    for args in (["import", str(path)], ["import", str(FIXTURE), "--dry-run"]):
        result = CliRunner().invoke(cli, ["--db", str(db), *args])
        assert not db.exists(), result.output
    assert result.exit_code == 0
    assert "nothing written (dry run)" in result.stdout
    assert "checked against an empty register" in result.stderr


def test_large_files_show_a_progress_bar_on_stderr(
    run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twinflow import cli_exchange

    monkeypatch.setattr(cli_exchange, "BAR_BYTES", 0)
    result = run("import", str(FIXTURE))
    assert result.exit_code == 0
    assert "reading" in result.stderr
    assert "writing" in result.stderr
    assert "reading" not in result.stdout
