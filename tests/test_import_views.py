"""An import on SQLite writes the read models' rows of its new cases with its events, in the
same transaction, so nothing is left for a catch-up: those rows must be exactly the ones a
rebuild makes from the log. Where they cannot be (a case the register already holds, a
writer who got in between), the import leaves them to the catch-up, which must then give the
same read models. A file with a problem writes no row anywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from twinflow import backfill
from twinflow.application import Register
from twinflow.errors import BadFile
from twinflow.exchange import catch_up_views, import_file
from twinflow.projection import KEYS

HEADER = "case,workflow,action,by,party,decided_on,effective_on,reason,title,parties,summary\n"
VARIED = (
    HEADER
    # rows out of order, imprecise and backdated dates, quotes, a newline, non-ASCII text
    + "aero-koln,,suspend,executive,Köln,2020-03,,\"a \"\"reason\"\"\",,,\n"
    + 'aero-koln,twinning,open,council,,1990?,,,"Ærø – Köln ""\\ 😀",Ærø; Köln,\n'
    + 'aero-koln,,note:letter,,Ærø,2021,,,,,"a\nletter"\n'
    + "coevorden-brest,twinning,open,council,,2000,,,Coevorden – Brest,Coevorden; Brest,\n"
    + "coevorden-brest,,suspend,executive,Brest,2022,,,,,\n"
    + "coevorden-brest,,freeze,executive,Coevorden,2024-03-12,2024-03,formal ties end,,,\n"
    + "coevorden-brest,,note:visit,,Coevorden,2019,,,,,a visit\n"
    + "".join(
        f"town-{n},twinning,open,council,,{1980 + n},,,Town {n},A; B,\n"
        f"town-{n},,suspend,council,A,{1990 + n}-0{1 + n % 9},,,,,\n"
        f"town-{n},,resume,council,B,{1995 + n}~,,,,,\n"
        for n in range(12)
    )
)


def tables(register: Register) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read model, and the position they have seen."""
    if register.location.kind == "sqlite":
        assert register.location.path is not None
        conn: Any = sqlite3.connect(register.location.path)
    else:
        import psycopg

        conn = psycopg.connect(register.location.url)
    try:
        found = {
            table: list(map(tuple, conn.execute(f"SELECT * FROM {table} ORDER BY {key}")))
            for table, key in {**KEYS, "twinflow_position": "name"}.items()
        }
    finally:
        conn.close()
    return found


def rebuilt(register: Register) -> dict[str, list[tuple[Any, ...]]]:
    register.views.rebuild()
    return tables(register)


def test_the_new_cases_rows_are_written_with_the_events_as_a_rebuild_makes_them(
    register: Register, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(VARIED, encoding="utf-8")
    summary = import_file(register, path, actor="clerk Ærø")
    last = register.events.recorder.max_notification_id()
    assert summary.events == last == 1 + 3 + 4 + 12 * 3  # the workflow and the cases
    written = tables(register)
    if register.location.kind == "sqlite":
        assert register.views.pending() == 0, "nothing left for the catch-up"
        assert written["twinflow_position"] == [("cases", last)]
        assert len(written["twinflow_audit"]) == last - 1  # every case event
    else:  # PostgreSQL's import leaves them to the catch-up
        assert written["twinflow_position"] == []
        assert written["twinflow_audit"] == []
        assert catch_up_views(register) == last
        written = tables(register)
    assert written == rebuilt(register)
    assert register.status("coevorden-brest", as_of="2024-06")["state"] == "frozen"
    assert [c["case"] for c in register.list_cases(state="suspended", as_of="2023")] == [
        "aero-koln",
        "coevorden-brest",
        *[f"town-{n}" for n in range(12) if 1995 + n > 2023],
    ]
    assert register.verify()["holds"]


def test_an_import_first_brings_the_read_models_up_to_the_log(
    register: Register, tmp_path: Path
) -> None:
    """Cases recorded since the last read: the read models are caught up first, then the
    import's new cases are written with its events."""
    register.open_case(
        "held-1", workflow="twinning", title="Held", parties=["A", "B"], by="council", on="1990"
    )
    assert register.views.pending() == 2
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "new-1,twinning,open,council,,1995,,,New,A; B,\n", encoding="utf-8")
    import_file(register, path, actor="clerk-a")
    if register.location.kind == "sqlite":
        assert register.views.pending() == 0
    catch_up_views(register)
    assert tables(register) == rebuilt(register)
    assert [c["case"] for c in register.list_cases(as_of="2000")] == ["held-1", "new-1"]


def test_a_file_that_extends_a_held_case_leaves_the_rows_to_the_catch_up(
    register: Register, tmp_path: Path
) -> None:
    register.open_case(
        "held-1", workflow="twinning", title="Held", parties=["A", "B"], by="council", on="1990"
    )
    catch_up_views(register)
    path = tmp_path / "rows.csv"
    path.write_text(
        HEADER
        + "new-1,twinning,open,council,,1995,,,New,A; B,\n"
        + "held-1,,suspend,council,A,2001,,,,,\n"
        + "new-2,twinning,open,council,,1996,,,New 2,A; B,\n",
        encoding="utf-8",
    )
    import_file(register, path, actor="clerk-a")
    assert register.views.pending() == 3  # the read models have not seen the import
    assert catch_up_views(register) == 3
    assert tables(register) == rebuilt(register)
    assert register.status("held-1", as_of="2002")["state"] == "suspended"


def test_a_writer_who_got_in_first_leaves_the_rows_to_the_catch_up(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another case recorded between the checks and the write: the read models have not
    seen it, so the import's rows are not written (the read models would claim to have
    seen it), and the catch-up brings in both."""
    run = backfill.Checker.run

    def then_another_writer(self: backfill.Checker, progress: Any = None) -> None:
        run(self, progress)
        other = Register(register.location, register.library)
        other.open_case(
            "other", workflow="twinning", title="Other", parties=["A"], by="council", on="1991"
        )
        other.close()

    register.open_case(
        "first", workflow="twinning", title="First", parties=["A"], by="council", on="1990"
    )
    catch_up_views(register)
    before = tables(register)
    monkeypatch.setattr(backfill.Checker, "run", then_another_writer)
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "new-1,twinning,open,council,,1995,,,New,A; B,\n", encoding="utf-8")
    import_file(register, path, actor="clerk-a")
    assert tables(register) == before
    assert register.views.pending() == 2
    catch_up_views(register)
    assert [c["case"] for c in register.list_cases(as_of="2000")] == ["first", "new-1", "other"]
    assert tables(register) == rebuilt(register)


def test_a_file_with_a_problem_writes_no_row_anywhere(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(VARIED + "town-3,,freeze,council,A,1970,,,,,\n", encoding="utf-8")
    with pytest.raises(BadFile, match="nothing was imported"):
        import_file(register, path, actor="clerk-a")
    assert register.events.recorder.max_notification_id() in (0, None)
    assert all(rows == [] for rows in tables(register).values())
