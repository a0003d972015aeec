"""verify shared among processes gives, word for word, the report of one pass: on untouched
and tampered registers whose chains cross the cut between runs, on both backends where the
records can be reached (SQLite here: tampering needs the raw file)."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.test_tamper import tamper
from twinflow import fanout
from twinflow.application import Register


def _interleaved(register: Register, cases: int = 9, rounds: int = 5) -> None:
    """Cases whose events alternate along the log, so each chain crosses every cut."""
    slugs = [f"case-{n}" for n in range(cases)]
    for slug in slugs:
        register.open_case(
            slug, workflow="twinning", title=slug, parties=["A", "B"], by="council", on="2000"
        )
    for k in range(rounds):
        for n, slug in enumerate(slugs):
            if (n + k) % 2:
                register.note(
                    slug, "visit", on=f"{2001 + k}-0{1 + n % 9}", party="A", summary="a visit"
                )
            else:
                register.decide(slug, "reaffirm", by="council", party="A", on=f"{2001 + k}")
    register.views.catch_up()


def _reports(path: Path, monkeypatch: pytest.MonkeyPatch, digest: str | None) -> list[Any]:
    found = []
    for workers in ("1", "2", "3", "7"):
        monkeypatch.setenv("TWINFLOW_WORKERS", workers)
        register = Register.at(str(path), create=False, unguarded_ok=True)
        try:
            found.append(register.verify(digest=digest))
        finally:
            register.close()
    return found


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "register.db"
    register = Register.at(str(path), create=True)
    _interleaved(register)
    register.close()
    return path


def _digest(path: Path) -> str:
    register = Register.at(str(path), create=False)
    try:
        return str(register.digest()["digest"])
    finally:
        register.close()


def _rowids(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT rowid FROM stored_events ORDER BY rowid")]


TAMPERINGS = {
    "untouched": None,
    "edited": "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'visit', "
    "'visjt') AS BLOB) WHERE rowid IN ({a}, {b})",
    "deleted": "DELETE FROM stored_events WHERE rowid IN ({a}, {c})",
    "opening deleted": "DELETE FROM stored_events WHERE rowid = 3",
    "moved": "UPDATE stored_events SET rowid = 100000 WHERE rowid = {b}",
    "as text": "UPDATE stored_events SET state = CAST(state AS TEXT) WHERE rowid = {c}",
    "forged topic": "UPDATE stored_events SET topic = 'os:system' WHERE rowid = {a}",
    # the last case's opening, in the second run from 3 processes up: no name of its own
    "opening's name emptied": "UPDATE stored_events SET state = CAST(replace(CAST(state AS "
    "TEXT), '\"slug\":\"case-8\"', '\"slug\":\"\"') AS BLOB) WHERE rowid = 10",
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_every_share_of_processes_gives_the_one_pass_report(
    filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    published = _digest(filled)
    path = tmp_path / f"{how.replace(' ', '-')}.db"
    shutil.copy(filled, path)
    ids = _rowids(path)
    statement = TAMPERINGS[how]
    if statement:
        a, b, c = ids[len(ids) // 3], ids[len(ids) // 2], ids[2 * len(ids) // 3]
        tamper(path, statement.format(a=a, b=b, c=c))
    for digest in (None, published):
        one, *shared = _reports(path, monkeypatch, digest)
        assert one["events"] > 40
        assert (how == "untouched") == one["holds"]
        for other in shared:
            assert other == one


def test_the_worker_count_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINFLOW_WORKERS", "two")
    with pytest.raises(Exception, match=r"TWINFLOW_WORKERS='two' is not a number of processes"):
        fanout.workers(10)


def test_small_logs_stay_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWINFLOW_WORKERS", raising=False)
    assert fanout.workers(fanout.MIN_EVENTS - 1) == 1
    assert 1 <= fanout.workers(fanout.MIN_EVENTS) <= fanout.MOST


def test_verify_shares_a_long_log_between_two_processes_unless_told(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of verify's processes holds the chains it meets: more than two only on request,
    while rebuild takes one per core up to four."""
    monkeypatch.delenv("TWINFLOW_WORKERS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(fanout, "MIN_EVENTS", 10)  # the filled register counts as long
    shared: list[int] = []
    run = fanout.run

    def counted(location: Any, task: str, parts: list[Any], *args: Any, **kwargs: Any) -> Any:
        shared.append(len(parts))
        return run(location, task, parts, *args, **kwargs)

    monkeypatch.setattr(fanout, "run", counted)
    register = Register.at(str(filled), create=False)
    try:
        assert register.verify()["holds"]
        register.views.rebuild()
        monkeypatch.setenv("TWINFLOW_WORKERS", "3")
        assert register.verify()["holds"]
    finally:
        register.close()
    assert shared == [2, 4, 3]


def test_a_failing_worker_is_one_clear_error(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register = Register.at(str(filled), create=False)
    try:
        runs = fanout.ranges(register.events.recorder, 2)
        with pytest.raises(Exception, match="no attribute 'nothing_here'"):
            list(fanout.run(register.location, "twinflow.verify:nothing_here", runs))
    finally:
        register.close()


def exits_with_a_mark(register: Register, part: str, emit: Any, progress: Any) -> None:
    """A worker's task (below): a file appears as its process exits, a while after its one
    item (an interpreter's end takes time too)."""

    def mark() -> None:
        time.sleep(0.5)
        Path(part).write_text("exited by itself")

    atexit.register(mark)
    emit(part)


def test_a_worker_that_sent_everything_exits_by_itself(filled: Path, tmp_path: Path) -> None:
    """Not killed once done: its interpreter ends as it should (exit handlers and all)."""
    marks = [str(tmp_path / f"part-{n}") for n in range(3)]
    register = Register.at(str(filled), create=False)
    try:
        task = "tests.test_verify_parts:exits_with_a_mark"
        assert [item for _, item in fanout.run(register.location, task, marks)] == marks
    finally:
        register.close()
    assert [Path(mark).read_text() for mark in marks] == ["exited by itself"] * 3


def test_workers_are_stopped_even_when_a_signal_cuts_their_grace_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C (or SIGTERM, made SystemExit) while finished workers are let exit: every one
    of them is still killed and reaped, none left running; and the grace is one for all."""
    slow = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)
    ]
    wait = subprocess.Popen.wait

    def interrupted(self: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        if timeout is not None and self is slow[0]:
            raise KeyboardInterrupt
        return wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fanout._stop(slow, ended=True)
    assert [process.returncode for process in slow] == [-9, -9, -9]
    monkeypatch.undo()
    slow = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(3)
    ]
    monkeypatch.setattr(fanout, "ENDING", 0.5)
    started = time.monotonic()
    fanout._stop(slow, ended=True)
    assert time.monotonic() - started < 1.4  # not 0.5 s for each of the three
    assert [process.returncode for process in slow] == [-9, -9, -9]


def test_shared_verify_on_both_backends(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interleaved(register, cases=5, rounds=3)
    published = register.digest()["digest"]
    reports = []
    for workers in ("1", "3"):
        monkeypatch.setenv("TWINFLOW_WORKERS", workers)
        reports.append(register.verify(digest=published))
    assert reports[0]["holds"] and reports[0]["events"] == 21
    assert reports[1] == reports[0]


def test_more_processes_than_records(register: Register, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINFLOW_WORKERS", "7")
    empty = register.verify()
    assert (empty["holds"], empty["events"]) == (True, 0)
    register.open_case(
        "a-b", workflow="twinning", title="A", parties=["A"], by="council", on="2000"
    )
    assert fanout.ranges(register.events.recorder, 7) == [(0, 1, 1), (1, 2, 2)]
    found = register.verify()
    assert (found["holds"], found["events"], found["cases"]) == (True, 2, 1)
