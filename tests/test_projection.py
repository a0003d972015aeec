"""A rebuild of the read models — in one process or shared among several — writes exactly the
rows that catching up event by event wrote, on both backends; a rebuild that fails leaves the
read models as they were."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.test_performance_paths import _record_randomly
from twinflow import logread, projection, storage
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.errors import RuleViolation, StorageError

TABLES = {
    "twinflow_cases": "slug",
    "twinflow_parties": "party, slug",
    "twinflow_audit": "position",
    "twinflow_steps": "slug, idx",
    "twinflow_position": "name",
}


def _rows(register: Register) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    with register.views.cursor(commit=False) as cursor:
        for table, order in TABLES.items():
            cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
            found[table] = [tuple(dict(r).values()) for r in cursor.fetchall()]
    return found


def _varied(register: Register) -> None:
    """Cases whose events interleave along the log: random, imprecise and backdated
    decisions, notes, a correction, a retraction, shared parties."""
    rng = random.Random(6)
    for n in range(4):
        _record_randomly(register, f"case-{n}", rng, 12)
    for n in range(4):
        slug = f"case-{n}"
        register.note(slug, "letter", on=f"{2010 + n}", party="Brest", summary="a letter")
        with suppress(RuleViolation):  # where the path allows it
            register.decide(slug, "reaffirm", by="council", party="Coevorden", on="2013")
    register.open_case(
        "with-changes",
        workflow="twinning",
        title="Ærø – Brest",
        parties=["Ærø", "Brest"],
        by="council",
        on="2001",
    )
    register.decide("with-changes", "suspend", by="executive", party="Brest", on="2020")
    register.decide("with-changes", "freeze", by="executive", party="Ærø", on="2024-03", reason="r")
    register.correct("with-changes", 2, why="it was 2022", on="2022")
    register.retract("with-changes", 3, why="recorded on the wrong case")
    register.views.catch_up()


@pytest.mark.parametrize("workers", ["1", "3", "11"])  # 11: more than SQLite attaches
def test_a_rebuild_writes_what_catching_up_wrote(
    register: Register, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    _varied(register)
    caught_up = _rows(register)
    assert len(caught_up["twinflow_audit"]) > 30
    monkeypatch.setenv("TWINFLOW_WORKERS", workers)
    events = register.views.rebuild()
    assert events == int(register.events.recorder.max_notification_id())
    assert _rows(register) == caught_up


def _rebuilds_seen(monkeypatch: pytest.MonkeyPatch) -> list[Register]:
    """The registers projection.rebuild is called on from now on, as it is called."""
    called: list[Register] = []
    original = projection.rebuild

    def spy(register: Register, progress: Any = None) -> int:
        called.append(register)
        return original(register, progress)

    monkeypatch.setattr(projection, "rebuild", spy)
    return called


def test_empty_read_models_are_filled_by_a_rebuild(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an import or restore into a new register, the read models hold nothing: the
    first catch-up reads the log in case order, as a rebuild does."""
    _varied(register)
    caught_up = _rows(register)
    with register.views.cursor(commit=True) as cursor:
        for statement in register.views.clear_statements():
            cursor.execute(statement)
    monkeypatch.setattr(projection, "CHUNK", 5)
    called = _rebuilds_seen(monkeypatch)
    assert register.views.catch_up() > 0
    assert len(called) == 1
    assert _rows(register) == caught_up


def test_a_failed_rebuild_leaves_the_read_models_as_they_were(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    _varied(register)
    caught_up = _rows(register)
    monkeypatch.setenv("TWINFLOW_WORKERS", "1")
    monkeypatch.setattr(projection, "CHUNK", 3)
    seen = []

    def failing(case: projection.Head, steps: Any) -> Any:
        seen.append(case.slug)
        if len(seen) == 3:
            raise RuntimeError("the disk went away")
        return original(case, steps)

    original = projection.case_row
    monkeypatch.setattr(projection, "case_row", failing)
    with pytest.raises(RuntimeError, match="the disk went away"):
        register.views.rebuild()
    assert _rows(register) == caught_up


@pytest.mark.parametrize("fails", [False, True])
def test_a_shared_rebuild_leaves_no_scratch_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """The scratch files lie beside the register while it runs, and are gone after it,
    whether it succeeded or failed (here: as their rows were being copied in)."""
    register = Register.at(str(tmp_path / "register.db"), create=True)
    try:
        _varied(register)
        caught_up = _rows(register)
        monkeypatch.setenv("TWINFLOW_WORKERS", "3")
        if fails:

            def failing(*args: Any) -> None:
                raise RuntimeError("the disk went away")

            monkeypatch.setattr(projection, "_copy_in", failing)
            with pytest.raises(RuntimeError, match="the disk went away"):
                register.views.rebuild()
        else:
            assert register.views.rebuild() > 30
        assert _rows(register) == caught_up
    finally:
        register.close()
    left = [p.name for p in tmp_path.iterdir() if not p.name.startswith("register.db")]
    assert left == []


@pytest.fixture
def on_file(tmp_path: Path) -> Iterator[Register]:
    """A SQLite register in the test's folder, holding _varied's cases, caught up."""
    register = Register.at(str(tmp_path / "register.db"), create=True)
    try:
        _varied(register)
        yield register
    finally:
        register.close()


def test_no_room_for_scratch_files_is_one_clear_error(
    on_file: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caught_up = _rows(on_file)

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(projection.tempfile, "TemporaryDirectory", full)
    with pytest.raises(StorageError) as raised:
        on_file.views.rebuild()
    assert str(raised.value) == (
        f"the rebuild could not write its scratch files in {tmp_path} ([Errno 28] No space "
        "left on device): free some disk space there or make the folder writable, and run "
        "it again; the read models are as they were"
    )
    assert _rows(on_file) == caught_up


def test_a_failed_attach_leaves_the_connection_as_it_was(tmp_path: Path) -> None:
    register = Register.at(str(tmp_path / "register.db"), create=True)
    try:
        datastore = register.events.recorder.datastore  # type: ignore[attr-defined]
        scratch = tmp_path / "scratch.db"
        sqlite3.connect(scratch).close()
        files = {"first": scratch, "second": tmp_path / "no such folder" / "x.db"}
        attaching = storage.attached(datastore, files)
        with pytest.raises(sqlite3.OperationalError, match="unable to open database"), attaching:
            pass
        with datastore.get_connection(commit=True) as connection, connection.cursor() as cursor:
            cursor.execute("PRAGMA database_list")
            assert [r["name"] for r in cursor.fetchall()] == ["main"]
    finally:
        register.close()


EARLIER_LAYOUT = (  # the read models' tables as twinflow created them before fix 23
    "CREATE TABLE twinflow_parties (party TEXT, slug TEXT, PRIMARY KEY (party, slug))",
    "CREATE TABLE twinflow_audit (position BIGINT PRIMARY KEY, slug TEXT, seq INTEGER, "
    "kind TEXT, detail TEXT, actor TEXT, recorded_at TEXT, on_behalf_of TEXT)",
    "CREATE INDEX twinflow_audit_actor ON twinflow_audit (actor, recorded_at)",
    "CREATE INDEX twinflow_audit_slug ON twinflow_audit (slug, recorded_at)",
    "CREATE TABLE twinflow_steps (slug TEXT NOT NULL, idx INTEGER NOT NULL, seq INTEGER, "
    "decision TEXT, date_text TEXT, start TEXT, earliest TEXT, latest TEXT, state TEXT, "
    "changed INTEGER, since_idx INTEGER, reach TEXT, PRIMARY KEY (slug, idx))",
    "CREATE INDEX twinflow_steps_reach ON twinflow_steps (slug, reach, idx)",
    "CREATE INDEX twinflow_steps_start ON twinflow_steps (slug, start, idx)",
)


def _layout(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'twinflow_%' "
                "AND name NOT LIKE 'twinflow_snapshots%' AND sql IS NOT NULL"
            ).fetchall()
        )


def test_a_rebuild_brings_read_models_of_an_earlier_layout_to_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register whose read models twinflow made before fix 23 keeps working as it is, and
    `twinflow rebuild` gives it the current layout with the same rows; a failed rebuild
    leaves the earlier layout."""
    path = tmp_path / "earlier.db"
    register = Register.at(str(path), create=True)
    current = _layout(path)
    with register.views.cursor(commit=True) as cursor:
        for table in ("twinflow_parties", "twinflow_audit", "twinflow_steps"):
            cursor.execute(f"DROP TABLE {table}")
        for statement in EARLIER_LAYOUT:
            cursor.execute(statement)
    earlier = _layout(path)
    assert "twinflow_audit_actor" in earlier and "WITHOUT ROWID" not in earlier["twinflow_steps"]
    _varied(register)  # recorded and caught up in the earlier layout
    caught_up = _rows(register)
    everything = register.views.audit()  # the queries work on the earlier layout
    assert len(everything) > 30
    assert register.views.audit(actor=everything[0]["actor"]) == everything  # one clerk
    register.close()
    monkeypatch.setenv("TWINFLOW_WORKERS", "1")
    monkeypatch.setattr(projection, "case_row", _failing)
    with pytest.raises(RuntimeError, match="the disk went away"):
        Register.at(str(path)).views.rebuild()
    assert _layout(path) == earlier
    monkeypatch.undo()

    result = CliRunner().invoke(cli, ["--db", str(path), "rebuild"])
    assert result.exit_code == 0, result.output
    assert _layout(path) == current
    assert "twinflow_audit_actor" not in current
    assert current["twinflow_audit"].startswith(
        "CREATE TABLE twinflow_audit (position INTEGER PRIMARY KEY"
    )
    assert current["twinflow_steps"].endswith("WITHOUT ROWID")
    assert current["twinflow_parties"].endswith("WITHOUT ROWID")
    register = Register.at(str(path))
    assert _rows(register) == caught_up
    register.close()


def _failing(case: projection.Head, steps: Any) -> Any:
    raise RuntimeError("the disk went away")


def test_the_ranges_of_case_ids_cover_them_all_in_the_widths_asked() -> None:
    """The command's range is narrower than the others' (it also empties the read models
    and copies its own rows in); together they cover every id once, in order."""
    ranges = projection._id_ranges([9, 10, 10])
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(ranges[k][1] == ranges[k + 1][0] for k in range(len(ranges) - 1))
    first, second = (ranges[k][1] for k in range(2))
    assert first is not None and second is not None
    assert first.int == 9 * (1 << 128) // 29
    assert second.int == 19 * (1 << 128) // 29
    assert projection._id_ranges([1]) == [(None, None)]


def _cases_of(register: Register) -> list[list[logread.Stored]]:
    recorder = register.events.recorder
    last = int(recorder.max_notification_id())
    return list(projection._cases(recorder, None, None, last, lambda n: None))


def test_cases_read_straight_from_their_json_give_what_their_replay_gives(
    register: Register,
) -> None:
    """A rebuild reads a case of openings, decisions and notes in plain JSON without making
    its events and aggregate; the items, heading and audit rows must be the replay's, and
    every other case goes to the replay."""
    _varied(register)
    clerk = "clerk Ærø"  # on PostgreSQL the database role records, for this clerk
    register.open_case(
        "aero-koln",
        workflow="twinning",
        title="Ærø – Köln \"\\ 😀",
        parties=["Ærø", "Köln"],
        by="council",
        on="1990?",
        actor=clerk,
    )
    register.decide("aero-koln", "suspend", by="executive", party="Köln", on="2020-03", actor=clerk)
    register.note("aero-koln", "letter", on="2021", party="Ærø", summary="a\nletter", actor=clerk)
    decode = logread.Decoder(register.events.mapper)
    assert decode.plain
    read, replayed = [], []
    behalf = set()
    for records in _cases_of(register):
        direct = projection._direct(records)
        reference = projection._replayed(decode, records)
        if direct is None:
            replayed.append(reference[0].slug)
        else:
            assert direct == reference
            read.append(direct[0].slug)
            behalf |= {row[-1] for row in direct[2]}
    assert replayed == ["with-changes"]  # a correction and a retraction
    assert sorted(read) == ["aero-koln", *[f"case-{n}" for n in range(4)]]
    assert behalf == ({None, clerk} if register.session_user else {None})


def _altered(records: list[logread.Stored], k: int, **changes: Any) -> list[logread.Stored]:
    return [r._replace(**changes) if i == k else r for i, r in enumerate(records)]


def test_a_case_unlike_the_usual_is_replayed_rather_than_read_straight(
    register: Register,
) -> None:
    _varied(register)
    records = next(c for c in _cases_of(register) if len(c) > 3 and projection._direct(c))
    state = records[2].state
    migrated = "twinflow:case:migrated"
    for unusual in (
        _altered(records, 2, state=state.replace(b'"actor":', b'"vote":1e-07,"actor":')),
        _altered(records, 2, state=state.replace(b'"actor":', b'"vote":%d,"actor":' % 2**70)),
        _altered(records, 2, state=state.replace(b'"actor":', b'"x":"\\ud800","actor":')),
        _altered(records, 2, state=state.decode()),  # text rather than bytes
        _altered(records, 2, topic=migrated),  # an event that is not an opening, decision, note
        _altered(records, 0, topic=records[1].topic),  # no opening first
        _altered(records, 2, topic=records[0].topic),  # a second opening
        records[:2] + records[3:],  # a version missing
    ):
        assert projection._direct(unusual) is None
    # Those numbers and the half character are still read by the replay, as before.
    decode = logread.Decoder(register.events.mapper)
    for unusual in (
        _altered(records, 2, state=state.replace(b'"actor":', b'"vote":1e-07,"actor":')),
        _altered(records, 2, state=state.replace(b'"actor":', b'"vote":%d,"actor":' % 2**70)),
        _altered(records, 2, state=state.replace(b'"actor":', b'"x":"\\ud800","actor":')),
    ):
        assert projection._replayed(decode, unusual)[1] == projection._replayed(decode, records)[1]
    # Escaped characters and numbers orjson writes back as they were are read straight, as
    # the replay reads them.
    floated = _altered(records, 2, state=state.replace(b'"actor":', b'"vote":1.5,"actor":'))
    assert projection._direct(floated) == projection._replayed(decode, floated)
    escaped = _altered(
        records, 2, state=state.replace(b'"actor":"', b'"x":"\\u0001","actor":"\\"\\n')
    )
    assert projection._direct(escaped) == projection._replayed(decode, escaped)
    assert projection._direct(escaped)[2][2][5] == '"\n' + projection._direct(records)[2][2][5]


def test_a_compressed_register_is_rebuilt_through_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")
    register = Register.at(str(tmp_path / "register.db"), create=True)
    try:
        _varied(register)
        caught_up = _rows(register)
        assert not logread.Decoder(register.events.mapper).plain
        monkeypatch.setattr(projection, "_direct", None)  # never called
        register.views.rebuild()
        assert _rows(register) == caught_up
    finally:
        register.close()


@pytest.mark.parametrize(("new", "rebuilds"), [(12, False), (60, True)])
def test_a_catch_up_with_half_the_log_or_more_to_read_rebuilds_instead(
    register: Register, monkeypatch: pytest.MonkeyPatch, new: int, rebuilds: bool
) -> None:
    """After a large import into a small register, the read models are rebuilt (each case
    read once) rather than caught up batch after batch; the bar's total says so."""
    _varied(register)
    held = int(register.events.recorder.max_notification_id())
    assert held < 60
    register.open_case(
        "late", workflow="twinning", title="Late", parties=["A", "B"], by="council", on="2000"
    )
    for n in range(new - 1):
        register.note("late", "letter", on=f"{2001 + n % 20}", party="A", summary=f"{n}")
    last = held + new
    monkeypatch.setattr(projection, "CHUNK", 5)
    assert register.views.pending() == (last if rebuilds else new)
    called = _rebuilds_seen(monkeypatch)
    told: list[int] = []
    assert register.views.catch_up(told.append) == sum(told) == (last if rebuilds else new)
    assert len(called) == int(rebuilds)
    assert register.views.pending() == 0
    caught_up = _rows(register)
    assert len(caught_up["twinflow_audit"]) == last - 1  # all but the workflow's registration
    register.views.rebuild()
    assert _rows(register) == caught_up


def _settings(cursor: Any) -> dict[str, int]:
    found = {}
    for name in projection.LOADING:
        cursor.execute(f"PRAGMA main.{name}")
        found[name] = cursor.fetchone()[0]
    return found


@pytest.mark.parametrize("fails", [False, True])
def test_the_settings_for_loading_are_the_connections_own_again_afterwards(
    tmp_path: Path, fails: bool
) -> None:
    with closing(sqlite3.connect(tmp_path / "x.db")) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA main.secure_delete = 1")
        own = _settings(cursor)
        assert own != projection.LOADING
        with suppress(RuntimeError), projection._loading(cursor):
            assert _settings(cursor) == projection.LOADING
            if fails:
                raise RuntimeError("the disk went away")
        assert _settings(cursor) == own


def test_a_rebuild_drops_the_old_tables_without_overwriting_their_pages(
    on_file: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    caught_up = _rows(on_file)
    seen = []
    original = projection._bulk_load

    def spy(cursor: Any, create: Any) -> None:
        seen.append(_settings(cursor))
        original(cursor, create)

    monkeypatch.setattr(projection, "_bulk_load", spy)
    on_file.views.rebuild()
    assert seen == [projection.LOADING]
    assert _rows(on_file) == caught_up
