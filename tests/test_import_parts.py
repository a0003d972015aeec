"""A large import is shared among processes: spans of the file are read, and runs of its cases
checked and built, each by a process of its own. Whatever the number of processes, the import
must give what one process gives: the same events in the same order, the same read models,
the same summary, and for a bad file the same problems, with nothing written. A worker that
fails writes nothing either."""

from __future__ import annotations

import json
import mmap
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_import_views import tables
from twinflow import backfill, fanout, importer
from twinflow.application import Register
from twinflow.definitions import Library, bundled_dir
from twinflow.errors import BadFile, ConflictError, StorageError, TwinflowError
from twinflow.exchange import Summary, catch_up_views, import_file
from twinflow.spill import Spill, Spilled
from twinflow.storage import MOST_ATTACHED

COLUMNS = ("case", "workflow", "action", "by", "party", "decided_on", "effective_on", "reason")
HEADER = ",".join([*COLUMNS, "title", "parties", "summary"]) + "\n"


def story(cases: int, seed: int = 7) -> list[str]:
    """The rows of `cases` cases, shuffled: each case's rows are spread over the file."""
    rows = []
    for n in range(cases):
        slug = f"town-{n}"
        rows += [
            f'{slug},twinning,open,council,,{1970 + n % 30},,,"Town {n}, ""twin""",A; B,\n',
            f"{slug},,suspend,council,A,{2001 + n % 9}-0{1 + n % 9},,,,,\n",
            f'{slug},,note:visit,,B,{2002 + n % 9}~,,,,,"a visit,\nover two lines"\n',
            f"{slug},,resume,executive,B,{2011 + n % 5},,,,,\n",
        ]
        if n % 3 == 0:
            rows.append(f"{slug},,freeze,executive,A,2020,2019-12,ties end,,,\n")
    random.Random(seed).shuffle(rows)
    return rows


def write(folder: Path, rows: list[str], name: str = "rows.csv") -> Path:
    path = folder / name
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def as_ndjson(folder: Path, csv_path: Path) -> Path:
    import csv

    with csv_path.open(encoding="utf-8", newline="") as handle:
        records = [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]
    path = folder / "rows.ndjson"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def imported(
    register: Register, path: Path, workers: int, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Summary:
    with monkeypatch.context() as patch:
        patch.setenv("TWINFLOW_WORKERS", str(workers))
        return import_file(register, path, actor="clerk-a", **options)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cases whose events this process builds (backfill.Checker.emit), as built."""
    cases: list[str] = []
    emit = backfill.Checker.emit

    def counted(self: backfill.Checker, slug: str, *args: Any) -> None:
        cases.append(slug)
        emit(self, slug, *args)

    monkeypatch.setattr(backfill.Checker, "emit", counted)
    return cases


def logged(register: Register) -> list[tuple[Any, ...]]:
    """The log as recorded, but for each event's moment and the hashes that cover it, and
    who recorded it (checked here: each backend names the clerk its own way)."""
    found = register.events.recorder.select_notifications(start=1, limit=100_000)
    kept = []
    for n in found:
        state = json.loads(n.state)
        assert (state.pop("actor"), state.pop("on_behalf_of")) == register.identity("clerk-a")
        for moment in ("timestamp", "hash", "prev_hash"):
            state.pop(moment, None)
        kept.append((n.id, str(n.originator_id), n.originator_version, n.topic, state))
    return kept


def read_models(register: Register) -> dict[str, list[tuple[Any, ...]]]:
    """Every read model's rows, the audit's without who and when (as `logged`)."""
    catch_up_views(register)
    found = tables(register)
    found["twinflow_audit"] = [row[:5] for row in found["twinflow_audit"]]
    return found


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_a_file_shared_among_processes_gives_what_one_process_gives(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    path = write(tmp_path, story(40))
    if fmt == "ndjson":
        path = as_ndjson(tmp_path, path)
    alone = Register.at(str(tmp_path / "alone.db"), create=True)
    one = imported(alone, path, 1, monkeypatch)
    shared = imported(register, path, 3, monkeypatch)
    assert shared == one
    assert (one.rows, one.cases_opened, one.events) == (40 * 4 + 14, 40, 1 + 40 * 4 + 14)
    assert logged(register) == logged(alone)
    assert read_models(register) == read_models(alone)
    assert register.verify()["holds"]
    alone.close()


def test_a_dry_run_shared_among_processes_counts_what_one_process_counts(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, story(12))
    one = imported(register, path, 1, monkeypatch, dry_run=True)
    assert imported(register, path, 3, monkeypatch, dry_run=True) == one
    assert one.events == 1 + 12 * 4 + 4
    assert register.events.recorder.max_notification_id() in (0, None)


@pytest.mark.parametrize("reading", [True, False], ids=["in-reading", "in-cases"])
def test_problems_found_by_several_processes_are_listed_as_one_process_lists_them(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reading: bool
) -> None:
    """Problems a row shows on its own make this process read the file again alone; those
    of the case checks come from rows read by several processes, with their lines."""
    rows = story(30)
    rows[40] = "town-9,,end,council,A,1960,,,,,\n"  # before the case opens
    rows[70] = "town-99,,suspend,council,A,2001,,,,,\n"  # never opened
    rows[-1] = "town-8,,resume,council,A,2030,,,,,\n"  # not allowed from active
    if reading:
        rows[5] = "town-3,,suspend,council,A,2001-13,,,,,\n"  # no such month
        rows[100] = 'town-5,,note:visit,,A,2003,,,,,"a stray "" quote\n'  # an unended quote
    path = write(tmp_path, rows)
    found = []
    for workers in (1, 3):
        with pytest.raises(BadFile) as refused:
            imported(register, path, workers, monkeypatch)
        found.append([str(p) for p in refused.value.problems])
        assert register.events.recorder.max_notification_id() in (0, None)
        assert all(rows == [] for rows in tables(register).values())
    assert found[0] == found[1]
    assert len(found[0]) >= (5 if reading else 3)
    last = 2 + sum(row.count("\n") for row in rows[:-1])  # the last row's line
    assert any(problem.startswith(f"line {last}: action 'resume'") for problem in found[1])


def test_a_cut_is_only_made_at_a_line_end_outside_quotes(tmp_path: Path) -> None:
    records = ['a,"one\ntwo\nthree",x\n', "b,plain,y\n", 'c,"q ""x""\nz",w\n', "d,,\n"]
    text = HEADER + "".join(records)
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    body = len(HEADER)
    ends = [body + len("".join(records[: k + 1])) for k in range(len(records))]
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for near in range(body, len(text)):
            expected = next(end for end in ends if end > near)
            assert importer._record_end(data, body, near) == expected, near
    spans = importer._spans(path, "csv", 2, tmp_path, path)  # cut after 3/5 of the bytes
    assert (body + (len(text) - body) * 3 // 5) in range(ends[1], ends[2])
    assert [(s.start, s.end) for s in spans] == [(body, ends[2]), (ends[2], len(text))]
    assert [s.line for s in spans] == [2, 8]


def test_the_rows_of_a_file_read_in_spans_are_the_rows_of_one_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray quote (allowed inside an unquoted cell) throws the count of quotes off: a span
    may then start inside a quoted cell. Whatever the spans, the file's rows are read as
    one reading reads them (else read again by one process)."""
    rows = story(30)
    rows[3] = 'town-4,,note:visit,,A,2003,,,,,an 8" record\n'
    path = write(tmp_path, rows)
    register = Register.at(str(tmp_path / "spans.db"), create=True)
    alone = Register.at(str(tmp_path / "alone.db"), create=True)
    assert imported(register, path, 3, monkeypatch) == imported(alone, path, 1, monkeypatch)
    assert logged(register) == logged(alone)
    register.close()
    alone.close()


def test_the_users_workflow_folders_reach_the_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    text = (bundled_dir() / "twinning.yaml").read_text(encoding="utf-8")
    (folder / "pact.yaml").write_text(text.replace("name: twinning", "name: pact"))
    register = Register.at(str(tmp_path / "r.db"), create=True)
    register.library = Library([folder])
    path = write(tmp_path, [r.replace("twinning", "pact") for r in story(9)])
    summary = imported(register, path, 3, monkeypatch)
    assert summary.cases_opened == 9
    assert {c["workflow"] for c in register.list_cases()} == {"pact"}
    register.close()


@pytest.mark.parametrize("task", ["importer:read_part", "backfill:check_runs"])
def test_a_worker_that_fails_writes_nothing(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    path = write(tmp_path, story(20))
    run = fanout.run

    def failing(location: Any, given: str, *args: Any, **kwargs: Any) -> Any:
        # the other processes are given a task they cannot find
        return run(location, given.replace(task, f"{task}_gone"), *args, **kwargs)

    monkeypatch.setattr(fanout, "run", failing)
    with pytest.raises(AttributeError, match="_gone"):
        imported(register, path, 2, monkeypatch)
    assert register.events.recorder.max_notification_id() in (0, None)
    assert all(rows == [] for rows in tables(register).values())


def test_the_progress_of_a_shared_import_reaches_each_total(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, story(30))
    moved: dict[str, list[int]] = {}
    totals: dict[str, set[int]] = {}

    def progress(label: str, step: int, total: int) -> None:
        moved.setdefault(label, []).append(step)
        totals.setdefault(label, set()).add(total)

    summary = imported(register, path, 3, monkeypatch, progress=progress)
    size = path.stat().st_size
    assert totals["reading"] == {size} and sum(moved["reading"]) == size
    assert totals["checking"] == {summary.rows} and sum(moved["checking"]) == summary.rows
    assert totals["writing"] == {summary.events} and sum(moved["writing"]) == summary.events


def test_processes_started_ahead_and_not_needed_end_by_themselves() -> None:
    with fanout.ahead(2) as started:
        processes = [s.process for s in started]
    assert [p.returncode for p in processes] == [0, 0]  # not killed


def test_a_shared_import_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    register = Register.at(str(tmp_path / "r.db"), create=True)
    good = write(tmp_path, story(12))
    bad = write(tmp_path, ["town-1,,freeze,council,A,1960,,,,,\n", *story(12)], "bad.csv")
    imported(register, good, 3, monkeypatch)
    with pytest.raises(BadFile):
        imported(register, bad, 3, monkeypatch)
    register.close()
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("given", ["file", "pipe"])
def test_standard_input_is_shared_only_where_it_is_a_file_the_others_can_open(
    tmp_path: Path, given: str
) -> None:
    """/dev/stdin is each process's own standard input: the workers are given the real
    path of a file redirected to the command's, and a pipe is read by the command alone."""
    path = write(tmp_path, story(12))
    db = tmp_path / "r.db"
    env = dict(os.environ, TWINFLOW_WORKERS="3", TWINFLOW_ACTOR="clerk-a")
    command = [sys.executable, "-m", "twinflow", "--db", str(db), "import", "/dev/stdin"]
    script = (
        "import sys; from pathlib import Path; from twinflow import importer; "
        "print(importer.shareable(Path('/dev/stdin')))"
    )
    with path.open("rb") as handle:
        if given == "file":
            done = subprocess.run(
                [*command, "--format", "csv"], stdin=handle, capture_output=True, text=True, env=env
            )
            seen = subprocess.run(
                [sys.executable, "-c", script], stdin=handle, capture_output=True, text=True
            )
        else:
            done = subprocess.run(
                [*command, "--format", "csv"],
                input=handle.read().decode(),
                capture_output=True,
                text=True,
                env=env,
            )
            seen = subprocess.run(
                [sys.executable, "-c", script], input="", capture_output=True, text=True
            )
    assert (done.returncode, done.stderr) == (0, "")
    assert "12 case(s) opened" in done.stdout
    assert seen.stdout.strip() == (str(path.resolve()) if given == "file" else "None")


@pytest.mark.parametrize("change", ["link", "rewrite"])
def test_a_file_changed_while_it_is_read_by_several_processes_is_never_mixed(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Every process reads the file the command cut: a link pointed elsewhere meanwhile
    changes nothing, and a file written to meanwhile is refused, nothing written."""
    first = write(tmp_path, story(30), "first.csv")
    current = tmp_path / "current.csv"
    current.symlink_to(first)
    cut = importer._spans

    def then_changed(*args: Any) -> Any:
        spans = cut(*args)
        burg = [r.replace("Town", "Burg") for r in story(30)]
        if change == "link":  # a job puts the next export in place
            current.unlink()
            current.symlink_to(write(tmp_path, burg, "second.csv"))
        else:
            write(tmp_path, [*burg, "town-1,,note:visit,,A,2003,,,,,later\n"], "first.csv")
        return spans

    monkeypatch.setattr(importer, "_spans", then_changed)
    if change == "link":
        assert imported(register, current, 3, monkeypatch).cases_opened == 30
        assert {c["title"][:4] for c in register.list_cases()} == {"Town"}
        return
    with pytest.raises(ConflictError, match=r"current\.csv was replaced or changed while"):
        imported(register, current, 3, monkeypatch)
    assert register.events.recorder.max_notification_id() in (0, None)


def test_a_register_named_relative_to_another_folder_is_the_one_the_workers_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script may change folders after opening a register by a relative name."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    register = Register.at("r.db", create=True)
    imported(register, write(tmp_path, story(12)), 1, monkeypatch)
    elsewhere = Register.at(str(tmp_path / "b" / "r.db"), create=True)
    elsewhere.close()
    monkeypatch.chdir(tmp_path / "b")
    rows = [f"town-{n},,reaffirm,council,A,2030,,,,,\n" for n in range(12)]
    summary = imported(register, write(tmp_path, rows, "more.csv"), 3, monkeypatch)
    assert summary.cases_extended == 12
    register.close()
    check = Register.at(str(tmp_path / "a" / "r.db"), create=False)
    assert check.events.recorder.max_notification_id() == 1 + 12 * 4 + 4 + 12
    check.close()


def test_a_run_stops_building_once_another_found_a_problem(
    register: Register, tmp_path: Path, built: list[str]
) -> None:
    flag = tmp_path / "problems"
    with Spill(tmp_path / "spill.db") as spill:
        problems: list[Any] = []
        importer.read(write(tmp_path, story(12)), "csv", spill, problems, None)
        part = backfill.Part(
            str(spill.path), 0, 12, str(spill.path), "clerk-a", None, True, False, (), str(flag), ()
        )
        checker = backfill.Checker(register, register.library, spill, spill, part)
        checker.run()
        assert len(built) == 12 and checker.problems == [] and not flag.exists()
        bad = Spilled(7, False, {"kind": "note", "values": {}})
        checker.bad(bad, "case", "x", "is bad")
        assert flag.exists(), "the first problem is told to the other runs"
        built.clear()
        again = backfill.Checker(register, register.library, spill, spill, part)
        again.run()
    assert built == [], "nothing is built once a run found a problem"
    assert again.checked().counts["cases_opened"] == 12  # the checks go on


def test_more_processes_than_sqlite_attaches_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINFLOW_WORKERS", "11")
    assert backfill.processes(100) == MOST_ATTACHED - 1
    monkeypatch.delenv("TWINFLOW_WORKERS")
    register = Register.at(str(tmp_path / "r.db"), create=True)
    assert imported(register, write(tmp_path, story(30)), 11, monkeypatch).cases_opened == 30
    register.close()


def test_a_worker_started_ahead_that_died_is_reported(register: Register) -> None:
    with fanout.ahead(1) as started:
        started[0].process.kill()
        started[0].process.wait()
        running = fanout.run(
            register.location,
            "twinflow.importer:read_part",
            ["mine", "theirs"],
            here=lambda part, told: None,
            started=started,
            doing="reading the file",
        )
        with pytest.raises(StorageError, match="a worker process stopped while reading the file"):
            list(running)


def test_a_file_with_a_bad_row_is_checked_but_not_built(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: list[str]
) -> None:
    rows = story(12)
    rows[-1] = "town-3,,suspend,council,A,2001-13,,,,,\n"  # no such month
    with pytest.raises(BadFile, match="1 problem"):
        imported(register, write(tmp_path, rows), 1, monkeypatch)
    assert built == []


def test_ndjson_is_cut_at_any_line_end(tmp_path: Path) -> None:
    path = tmp_path / "rows.ndjson"
    line = '{"case": "a-b", "action": "note:visit", "decided_on": "2001", "summary": "8\\" x"}\n'
    path.write_text(line * 30, encoding="utf-8")
    spans = importer._spans(path, "ndjson", 3, tmp_path, path)
    assert len(spans) == 3
    assert all((s.start % len(line), s.end % len(line)) == (0, 0) for s in spans)


@pytest.mark.parametrize("workers", [1, 3])
def test_the_workflow_version_is_stamped_before_the_cases_that_use_it(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    imported(register, write(tmp_path, story(12)), workers, monkeypatch)
    found = register.events.recorder.select_notifications(start=1, limit=1000)
    moments = [json.loads(n.state)["timestamp"]["_data_"] for n in found]
    assert found[0].topic.startswith("twinflow:workflow")
    assert moments[0] < min(moments[1:])


def _marked(mark: str) -> list[int]:
    """The running processes whose environment holds `mark`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("spill", ["read-1.db", "part-1.db"], ids=["reading", "checking"])
def test_a_terminated_shared_import_writes_nothing_and_leaves_nothing(
    tmp_path: Path, spill: str
) -> None:
    """`kill` (SIGTERM) while the processes read and check: exit code 143, nothing written
    (the new register's file removed again), no file left in the temporary folder, no
    worker process left running."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    path = write(tmp_path, story(1500))
    db = tmp_path / "r.db"
    mark = f"twinflow-test-{os.getpid()}-{random.random()}"
    env = dict(
        os.environ, TWINFLOW_WORKERS="2", TWINFLOW_ACTOR="clerk-a", TMPDIR=str(scratch), MARK=mark
    )
    command = [sys.executable, "-m", "twinflow", "--db", str(db), "import", str(path)]
    importing = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(scratch.glob(f"twinflow-import-*/{spill}")):  # a worker's spill file
        assert importing.poll() is None, "the import ended before its workers were seen"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    importing.send_signal(signal.SIGTERM)
    _, stderr = importing.communicate(timeout=60)
    assert importing.returncode == 143, stderr
    assert list(scratch.iterdir()) == []
    assert not db.exists(), "the register the import made is removed again"
    deadline = time.monotonic() + 10
    while _marked(mark) and time.monotonic() < deadline:  # the workers end as their pipes close
        time.sleep(0.05)
    assert _marked(mark) == []


@pytest.mark.parametrize("workers", [1, 3])
def test_a_workflow_version_not_made_before_the_checks_stops_the_import(
    register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The versions a file's cases are the first to use are made before the checks; one the
    checks need that was not (its file changed meanwhile) stops the import."""
    monkeypatch.setattr(backfill, "_workflow_events", lambda *args: {})
    with pytest.raises(TwinflowError, match="a workflow file changed, or another writer"):
        imported(register, write(tmp_path, story(12)), workers, monkeypatch)
    assert register.events.recorder.max_notification_id() in (0, None)
    assert all(rows == [] for rows in tables(register).values())


def pid_of(register: Register, part: Any, emit: Any, progress: Any) -> None:
    """A worker task for the tests: the process's id."""
    emit(os.getpid())


def test_a_worker_started_ahead_serves_one_run_after_another_and_then_ends(
    register: Register,
) -> None:
    task = "tests.test_import_parts:pid_of"
    with fanout.ahead(1) as started:
        process = started[0].process
        for _ in range(2):  # each run gives it back, for the next
            found = fanout.results(
                register.location,
                task,
                ["mine", "theirs"],
                None,
                here=lambda p, t: 0,
                started=started,
            )
            assert found == [0, process.pid] and [s.process for s in started] == [process]
        assert process.poll() is None, "it waits for another part"
    assert process.returncode == 0


def test_a_case_opened_by_another_writer_while_the_runs_check_stops_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read models' rows are written with the runs only where no case of the file is in
    the register when the checks begin; a run that then finds one leaves its rows out, so
    the rows already written with the others cannot stand: nothing is written."""
    register = Register.at(str(tmp_path / "r.db"), create=True)
    register.open_case(
        "town-29", workflow="twinning", title="Held", parties=["A", "B"], by="council", on="1990"
    )
    catch_up_views(register)
    before, last = tables(register), register.events.recorder.max_notification_id()
    rows = [r for r in story(30) if not r.startswith("town-29,")]
    rows.append("town-29,,suspend,council,A,2001,,,,,\n")  # the last run extends it
    # as if another writer opened town-29 right after the command looked
    monkeypatch.setattr(backfill, "_holds_any", lambda register, slugs: False)
    with pytest.raises(ConflictError, match=r"another writer recorded in .* nothing was written"):
        imported(register, write(tmp_path, rows), 2, monkeypatch)
    assert tables(register) == before
    assert register.events.recorder.max_notification_id() == last
    register.close()
