"""Several writers at once, on SQLite and on PostgreSQL: real OS processes racing on one case
and on many, a writer that loses a race, and a writer that waits too long for a lock."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import concurrent_writers
from tests.conftest import Invoke
from twinflow import integrity, timeline
from twinflow.application import Register
from twinflow.errors import ConflictError

WRITERS = 4
EVENTS = 50
KEPT_CHANGING = (
    "case 'coevorden-brest' kept changing while you were recording (for 5 s, the lock "
    "timeout): try again"
)


def stored_events(register: Register) -> list[Any]:
    """Every stored event, decoded, in the global order."""
    recorder, mapper = register.events.recorder, register.events.mapper
    notifications = recorder.select_notifications(start=1, limit=100_000)
    return [mapper.to_domain_event(n) for n in notifications]


def tag_of(event: Any) -> str | None:
    fields = vars(event)
    values = fields.get("note") or fields.get("decision") or {}
    tag = values.get("summary") or values.get("reason")
    return str(tag) if tag else None


def assert_chains_hold(events: list[Any]) -> None:
    """Each event's hash is its content's, and it continues its own stream's chain."""
    last: dict[Any, tuple[int, str]] = {}
    for event in events:
        seq, prev = last.get(event.originator_id, (0, ""))
        assert event.originator_version == seq + 1, event
        assert event.prev_hash == prev, event
        assert integrity.hash_of(event) == event.hash, event
        last[event.originator_id] = (seq + 1, event.hash)


def race(db: str, slugs: list[str], opens: bool) -> list[tuple[str, str, str]]:
    """WRITERS processes, each recording EVENTS events on its slug; every outcome."""
    context = multiprocessing.get_context("spawn")  # no pool or connection crosses a fork
    barrier, out = context.Barrier(WRITERS), context.Queue()
    processes = [
        context.Process(
            target=concurrent_writers.run, args=(db, slugs[i], i, EVENTS, opens, barrier, out)
        )
        for i in range(WRITERS)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    outcomes = [outcome for found in results for outcome in found]
    assert [o for o in outcomes if o[1] == "crash"] == []
    assert [p.exitcode for p in processes] == [0] * WRITERS
    return outcomes


def check_store(register: Register, outcomes: list[tuple[str, str, str]], slugs: set[str]) -> None:
    """Every acknowledged event stored exactly once, nothing of a refused one, every timeline
    a legal path, every chain whole, and the read model in step with the log."""
    events = stored_events(register)
    stored = Counter(tag for tag in map(tag_of, events) if tag is not None)
    assert [t for t, n in stored.items() if n > 1] == []
    acknowledged = {tag for tag, outcome, _ in outcomes if outcome == "ok"}
    assert acknowledged == set(stored)
    assert [o for o in outcomes if o[1] == "error"] == []
    assert_chains_hold(events)
    assert register.verify()["holds"] is True
    listing = {row["case"]: row["state"] for row in register.list_cases()}
    for slug in slugs:
        case = register.get_case(slug)
        steps = timeline.path(timeline.in_force(case.entries), register.workflow_of(case))
        assert [e.seq for e in case.entries] == list(range(1, len(case.entries) + 1))
        assert listing[slug] == steps[-1].after == register.status(slug)["state"]


def test_four_processes_on_one_case_lose_nothing_and_record_nothing_twice(
    register: Register, db: str
) -> None:
    concurrent_writers.open_case(register, "coevorden-brest", "clerk-0")
    outcomes = race(db, ["coevorden-brest"] * WRITERS, opens=False)
    check_store(register, [*outcomes, ("coevorden-brest-open", "ok", "1")], {"coevorden-brest"})
    assert len(register.get_case("coevorden-brest").entries) == 1 + sum(
        1 for o in outcomes if o[1] == "ok"
    )
    # Notes, reaffirmations and suspensions are legal in any order: one fails only where its
    # writer lost the race again and again until the lock timeout, and then says so. A
    # resumption is refused where the case is active by then; after a lost race the message
    # says what changed.
    planned = dict(p for w in range(WRITERS) for p in concurrent_writers.plan(w, EVENTS))
    failed = Counter()
    for tag, outcome, message in outcomes:
        if outcome == "ok":
            continue
        failed[planned[tag], outcome] += 1
        if planned[tag] != "resume":
            assert (outcome, message) == ("conflict", KEPT_CHANGING), (tag, message)
        elif outcome == "refused":
            assert message.startswith("cannot resume case 'coevorden-brest' effective 2024: it is")
        elif message != KEPT_CHANGING:
            assert message.startswith("case 'coevorden-brest' changed while you were recording:")
            assert "your 'resume' is no longer allowed: cannot resume" in message
    print(f"not recorded, by kind and outcome: {dict(failed)}")
    # Every writer got through most of the time.
    for writer in range(WRITERS):
        mine = [o for o in outcomes if o[0].startswith(f"w{writer}-") and o[1] == "ok"]
        assert len(mine) > EVENTS // 2, (writer, failed)


def test_four_processes_on_their_own_cases_all_get_through(register: Register, db: str) -> None:
    slugs = [f"twinning-{i}" for i in range(WRITERS)]
    outcomes = race(db, slugs, opens=True)
    assert {o[1] for o in outcomes} == {"ok"}, [o for o in outcomes if o[1] != "ok"]
    assert len(outcomes) == WRITERS * EVENTS
    check_store(register, outcomes, set(slugs))
    for slug in slugs:
        assert len(register.get_case(slug).entries) == EVENTS
        assert register.status(slug)["state"] == "active"  # the last resumption, #48


def first_save_loses_to(register: Register, monkeypatch: pytest.MonkeyPatch, rival: Any) -> None:
    """Make the register's next save come just after `rival()` recorded on the same case."""
    real_save = register.events.save
    pending = [rival]

    def save(*aggregates: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return real_save(*aggregates, **kwargs)

    monkeypatch.setattr(register.events, "save", save)


def open_story(register: Register) -> None:
    concurrent_writers.open_case(register, "coevorden-brest", "clerk-a")
    register.decide(
        "coevorden-brest", "suspend", by="council", party="Brest", on="2022", actor="clerk-a"
    )


def test_a_decision_made_illegal_by_a_rival_fails_naming_what_changed(
    register: Register, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_story(register)
    rival = Register.at(db)
    first_save_loses_to(
        register,
        monkeypatch,
        lambda: rival.decide(
            "coevorden-brest",
            "end",
            by="council",
            party="Coevorden",
            on="2023",
            reason="no contacts left",
            actor="clerk-b",
        ),
    )
    with pytest.raises(ConflictError) as error:
        register.decide(
            "coevorden-brest",
            "resume",
            by="council",
            party="Coevorden",
            on="2024",
            actor="clerk-a",
        )
    by = "clerk-b" if rival.session_user is None else f"{rival.session_user} for clerk-b"
    assert str(error.value) == (
        "case 'coevorden-brest' changed while you were recording: it is now 'ended' "
        f"(#3 end by {by}); your 'resume' is no longer allowed: cannot resume case "
        "'coevorden-brest' effective 2024: it is 'ended' since 2023 (decision #3); allowed "
        "from 'ended': none"
    )
    triggers = [
        e.data.get("decision", {}).get("trigger") for e in rival.get_case("coevorden-brest").entries
    ]
    assert triggers == ["open", "suspend", "end"]
    rival.close()


def test_a_decision_still_legal_after_a_rival_is_recorded_once_after_it(
    register: Register, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_story(register)
    rival = Register.at(db)
    first_save_loses_to(
        register,
        monkeypatch,
        lambda: rival.note(
            "coevorden-brest", "letter", on="2023", summary="from clerk-b", actor="clerk-b"
        ),
    )
    result = register.decide(
        "coevorden-brest",
        "reaffirm",
        by="council",
        party="Coevorden",
        on="2024",
        actor="clerk-a",
    )
    assert result["seq"] == 4
    kinds = [e.kind for e in rival.get_case("coevorden-brest").entries]
    assert kinds == ["opened", "decided", "noted", "decided"]
    rival.close()


def test_a_save_stored_although_its_acknowledgement_was_lost_is_not_recorded_twice(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eventsourcing retries an insert whose connection broke; when the first try had been
    committed, the retry meets our own event and reports a conflict."""
    from eventsourcing.persistence import IntegrityError

    open_story(register)
    real_save = register.events.save
    calls = []

    def save_then_lose_the_answer(*aggregates: Any, **kwargs: Any) -> Any:
        calls.append(1)
        real_save(*aggregates, **kwargs)
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(register.events, "save", save_then_lose_the_answer)
    result = register.note(
        "coevorden-brest", "visit", on="2023", summary="once only", actor="clerk-a"
    )
    assert (result["seq"], len(calls)) == (3, 1)
    entries = register.get_case("coevorden-brest").entries
    assert [e.data.get("note", {}).get("summary") for e in entries] == [None, None, "once only"]


def test_several_twinflow_commands_at_once_each_record_once(
    run: Invoke, db: str, register: Register
) -> None:
    open_story(register)
    env = {**os.environ, "TWINFLOW_DB": db, "TWINFLOW_ACTOR": "clerk-c"}
    commands = [
        [
            sys.executable,
            "-m",
            "twinflow",
            "note",
            "coevorden-brest",
            "letter",
            "--on",
            "2023",
            "--summary",
            f"letter {i}",
        ]
        for i in range(WRITERS)
    ]
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in processes]  # type: ignore[union-attr]
    assert [(code, err) for code, _, err in results] == [(0, "")] * WRITERS
    summaries = sorted(
        e.data["note"]["summary"]
        for e in register.get_case("coevorden-brest").entries
        if e.kind == "noted"
    )
    assert summaries == [f"letter {i}" for i in range(WRITERS)]
    for process in processes:
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]


def count_events(register: Register) -> int:
    return len(stored_events(register))


def test_a_writer_waiting_past_the_lock_timeout_gets_one_line(
    db: str, register: Register, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_story(register)
    before = count_events(register)
    monkeypatch.setenv("TWINFLOW_LOCK_TIMEOUT", "1")
    with holding_the_write_lock(db):
        started = time.monotonic()
        result = run("note", "coevorden-brest", "visit", "--on", "2023", "--summary", "late")
        waited = time.monotonic() - started
    where = db if "://" in db else str(Path(db))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: the register is busy: another twinflow is writing ({where}); try again\n"
    )
    assert waited >= 1.0  # it did wait for the lock, rather than give up at once
    assert count_events(register) == before


@contextmanager
def holding_the_write_lock(db: str) -> Iterator[None]:
    """Another program holding the register's write lock: SQLite's BEGIN IMMEDIATE, or on
    PostgreSQL the lock eventsourcing takes on the events table to insert."""
    if "://" not in db:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    import psycopg

    with psycopg.connect(db) as pg:
        pg.execute("LOCK TABLE twinflow_events IN EXCLUSIVE MODE")
        yield
        pg.rollback()


def test_a_second_register_on_one_file_leaves_the_first_ones_write_ahead_log(
    tmp_path: Path,
) -> None:
    """Opening a register checks its file. Opening and closing the file itself in a process
    drops every lock the process's connections hold on it (POSIX's rule): another process
    that then closed the register took itself for the last one and deleted the write-ahead
    log under the live connections, whose next reads failed with "disk I/O error" (found
    with a rebuild's worker processes after a second Register in the same process)."""
    db = tmp_path / "register.db"
    first = Register.at(str(db), create=True)
    first.open_case("a-b", workflow="twinning", title="A–B", parties=["A"], by="council", on="2000")
    second = Register.at(str(db), create=False)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from twinflow.application import Register; "
            "Register.at(sys.argv[1], create=False).close()",
            str(db),
        ],
        check=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )
    assert (tmp_path / "register.db-wal").exists(), "the log's WAL was deleted under us"
    first.decide("a-b", "suspend", by="council", party="A", on="2001")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stored_events").fetchone() == (3,)
    assert second.status("a-b")["state"] == "suspended"
    second.close()
    first.close()
