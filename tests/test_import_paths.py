"""The import's faster paths keep its promises: the cases a register holds are found with one
query and take new rows while new cases open beside them; the write copies the spill file in
one transaction, which a writer that got there first fails as a whole, leaving the register
usable; the progress bar reaches its totals; the spill gives the checked rows back as they
went in; the workflow's rules looked up once are its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twinflow import backfill, bulk, rowcheck
from twinflow.application import Register
from twinflow.definitions import Library
from twinflow.domain import case_id
from twinflow.errors import BadFile, ConflictError
from twinflow.exchange import import_file
from twinflow.spill import Spill

HEADER = "case,workflow,action,by,party,decided_on,effective_on,reason,title,parties,summary\n"


@pytest.fixture
def held(register: Register) -> Register:
    """A register holding two cases."""
    for slug in ("held-1", "held-2"):
        register.open_case(
            slug, workflow="twinning", title=slug, parties=["A", "B"], by="council", on="1990"
        )
    register.decide("held-2", "suspend", by="council", party="A", on="2001")
    return register


def log(register: Register) -> list[tuple[Any, ...]]:
    found = register.events.recorder.select_notifications(start=1, limit=100_000)
    return [(n.id, n.originator_id, n.originator_version, n.state) for n in found]


def test_the_held_cases_are_asked_for_at_once(held: Register) -> None:
    ids = [case_id(s) for s in ("held-1", "new-1", "held-2", "new-2")] * 300  # > one query
    assert bulk.Table(held).existing(ids) == {case_id("held-1"), case_id("held-2")}
    assert bulk.Table(held).existing([]) == set()


def test_held_and_new_cases_of_one_file_into_a_register_that_holds_cases(
    held: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []
    find_case = Register._find_case

    def counted(self: Register, slug: str) -> Any:
        loaded.append(slug)
        return find_case(self, slug)

    monkeypatch.setattr(Register, "_find_case", counted)
    monkeypatch.setenv("TWINFLOW_WORKERS", "1")  # the spy is in this process
    path = tmp_path / "rows.csv"
    path.write_text(
        HEADER
        + "held-2,,resume,council,B,2003,,,,,\n"
        + "new-1,twinning,open,council,,1995,,,New one,A; B,\n"
        + "held-1,,note:visit,,A,1999,,,,,a visit\n"
        + "new-1,,suspend,executive,A,1996,,,,,\n"
        + "held-2,,reaffirm,council,A,2004,,,,,\n",
        encoding="utf-8",
    )
    summary = import_file(held, path, actor="clerk-a")

    assert sorted(loaded) == ["held-1", "held-2"], "only the held cases are loaded"
    assert (summary.cases_opened, summary.cases_extended, summary.events) == (1, 2, 5)
    assert [(h["seq"], h["trigger"]) for h in held.history("held-2")] == [
        (1, "open"),
        (2, "suspend"),
        (3, "resume"),
        (4, "reaffirm"),
    ]
    assert held.status("new-1", as_of="1997")["state"] == "suspended"
    assert held.verify()["holds"]


def test_a_writer_that_got_there_first_fails_the_copy_and_the_register_stays_usable(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        HEADER
        + "".join(f"c-{n},twinning,open,council,,1990,,,C {n},A; B,\n" for n in range(50))
        + "c-7,,suspend,council,A,2001,,,,,\n",
        encoding="utf-8",
    )
    run = backfill.Checker.run

    def then_another_writer(self: backfill.Checker, progress: Any = None) -> None:
        run(self, progress)  # every case checked and built; now someone opens c-7 first
        other = Register(register.location, register.library)
        other.open_case(
            "c-7", workflow="twinning", title="first", parties=["A"], by="council", on="1991"
        )
        other.close()

    monkeypatch.setattr(backfill.Checker, "run", then_another_writer)
    with pytest.raises(ConflictError, match="another writer recorded on the same cases"):
        import_file(register, path, actor="clerk-a")
    monkeypatch.undo()
    before = log(register)
    assert len(before) == 2  # the workflow and the other writer's case, nothing of the file

    path.write_text(HEADER + "c-8,twinning,open,council,,1990,,,C 8,A; B,\n", encoding="utf-8")
    assert import_file(register, path, actor="clerk-a").events == 1
    assert len(log(register)) == 3
    assert register.verify()["holds"]


def test_the_write_reports_progress_up_to_its_total(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 7)
    monkeypatch.setenv("TWINFLOW_WORKERS", "1")  # one spill file, copied in chunks
    path = tmp_path / "rows.csv"
    path.write_text(
        HEADER + "".join(f"c-{n},twinning,open,council,,1990,,,C {n},A; B,\n" for n in range(30)),
        encoding="utf-8",
    )
    steps: dict[str, list[tuple[int, int]]] = {}

    def progress(label: str, step: int, total: int) -> None:
        steps.setdefault(label, []).append((step, total))

    summary = import_file(register, path, actor="clerk-a", progress=progress)
    writing = steps["writing"]
    assert sum(step for step, _ in writing) == summary.events == 31
    assert {total for _, total in writing} == {31}
    # the workflow version, then the cases' events: SQLite copies them in chunks, PostgreSQL
    # gets them in batches of 1,000 rows
    expected = [1, 7, 7, 7, 7, 2] if register.location.kind == "sqlite" else [1, 30]
    assert [step for step, _ in writing] == expected
    assert len(log(register)) == 31


def test_half_a_surrogate_pair_in_ndjson_is_reported_not_stored(
    register: Register, tmp_path: Path
) -> None:
    path = tmp_path / "rows.ndjson"
    path.write_text(
        '{"case": "a-b", "workflow": "twinning", "action": "open", "by": "council", '
        '"decided_on": "2000", "title": "T \\ud800", "parties": "A; B"}\n'
        '{"case": "a-b", "action": "suspend", "by": "council", "party": "A", '
        '"decided_on": "2001", "source": ["https://example.org/\\udfff"]}\n'
        '{"case": "a-b", "action": "note:visit", "decided_on": "2002", '
        '"summary": "a pair \\ud83d\\udeb2 is a character"}\n',
        encoding="utf-8",
    )
    with pytest.raises(BadFile) as refused:
        import_file(register, path, actor="clerk-a")
    assert [str(p) for p in refused.value.problems] == [
        "line 1: title 'T \\ud800' holds \\ud800, half of a UTF-16 surrogate pair, which is no "
        "character: write the character itself, or both halves of its \\u pair",
        "line 2: source 'https://example.org/\\udfff' holds \\udfff, half of a UTF-16 surrogate "
        "pair, which is no character: write the character itself, or both halves of its \\u "
        "pair",
        # as for any line left unread, its case is then not opened
        "line 3: case 'a-b' is not in the register and no row of the file opens it: add an "
        "open row for it, or check the name",
    ]
    assert log(register) == []


def test_checked_rows_come_back_from_the_spill_as_they_went_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spill keeps rows as JSON (orjson): each comes back as it went in, odd text
    included, with its keys in their order and its lists as lists (repr shows both), in case
    order with the opening first."""
    sent: dict[int, dict[str, Any]] = {}
    add_row = Spill.add_row

    def spy(self: Spill, slug: str, **kwargs: Any) -> None:
        sent[kwargs["line"]] = kwargs["row"]
        add_row(self, slug, **kwargs)

    monkeypatch.setattr(Spill, "add_row", spy)
    odd = ["Ærø – ’s-Hertogenbosch", '"q\\', "nul\x00 tab\t", "\u2028", "🚲 𝄞", "\ufffd"]
    with Spill(tmp_path / "spill.db") as spill:
        for line, text in enumerate(odd, 2):
            cells = {"case": "c", "action": "reaffirm", "by": "council", "party": text}
            cells |= {"decided_on": "2001", "reason": text, "source": [text, "x"]}
            rowcheck.check(line, cells, spill, [])
        opening = {"case": "c", "workflow": "twinning", "action": "open", "by": "council"}
        opening |= {"decided_on": "1990", "title": odd[0], "parties": odd}
        rowcheck.check(20, opening, spill, [])
        rowcheck.check(21, {"case": "c", "action": "note:visit"}, spill, [])  # broken
        ((slug, back),) = list(spill.by_case())
    assert slug == "c"
    assert [r.line for r in back] == [20, 21, 2, 3, 4, 5, 6, 7]
    assert [r.broken for r in back] == [False, True] + [False] * 6
    assert [repr(r.row) for r in back] == [repr(sent[r.line]) for r in back]
    assert back[2].row["values"]["sources"] == [odd[0], "x"]


@pytest.mark.parametrize("name", ["twinning", "grant", "motion"])
def test_the_rules_looked_up_once_are_the_workflows_own(name: str) -> None:
    flow = Library.from_env().get(name)
    rules = backfill.Rules(flow)
    for transition in flow.transitions:
        assert rules.transitions[transition.trigger] is flow.transition(transition.trigger)
    assert set(rules.transitions) == set(flow.trigger_names)
    assert rules.bodies == set(flow.body_names)
    assert rules.notes == set(flow.note_names)
