"""Import speed beside raw sqlite3, and peak memory of exporting and importing a large log.

    python bench/bench_exchange.py                  # 100,000 rows; 1,000,000 events for memory
    python bench/bench_exchange.py --events 100000  # a quicker memory run
    python bench/bench_exchange.py --profile        # cProfile of import_file, 100,000 rows

Speed: 10,000 cases x 10 rows imported into a new SQLite register as `twinflow import` does
it, import_file (one transaction) and then the read models caught up, each part reported
apart, in rows per second, beside the same rows written with sqlite3 `executemany` into a plain
table in one transaction, in the same run (goal: the command within 10x). Memory: each stage
runs in a child process of its own, which reports its peak resident set (VmHWM): importing a
CSV of EVENTS rows (with the catch-up), exporting the log as ndjson, csv and CloudEvents, and
restoring the ndjson backup (goal: under 200 MB each), beside the peak of a child that only
imports twinflow.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twinflow.exchange import COLUMNS

ROWS_PER_CASE = 10
# One case's rows: a legal path with notes between (action, date, by, party, extra cells).
STORY = (
    ("open", "1990", "council", "", {"workflow": "twinning", "title": "Twinning {n}"}),
    ("note:visit", "1992-05", "", "A", {"summary": "a delegation visits"}),
    ("suspend", "2001", "executive", "B", {}),
    ("resume", "2003-04-01", "council", "A", {"reason": "talks again"}),
    ("reaffirm", "2005", "council", "A", {"vote": "21-4"}),
    ("note:letter", "2006~", "", "B", {"summary": "a letter on schools"}),
    ("make_dormant", "2010?", "executive", "A", {}),
    ("resume", "2014-06", "council", "B", {"reference": "RB 2014/{n}"}),
    ("suspend", "2020-03", "executive", "B", {"source": "https://example.org/{n}"}),
    ("freeze", "2024-03", "executive", "A", {"reason": "no contacts", "body_name": "college"}),
)


def write_csv(path: Path, cases: int) -> int:
    """Rows in chronological order across all cases, as an archive is read, not case by case."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for action, date, by, party, extra in STORY:
            for n in range(cases):
                row = {"case": f"town-{n}", "action": action, "decided_on": date, "by": by}
                row["party"] = party
                row.update({k: v.format(n=n) for k, v in extra.items()})
                if action == "open":
                    row["parties"] = "A; B"
                writer.writerow(row)
    return cases * len(STORY)


def baseline(path: Path, folder: Path, runs: int = 1) -> tuple[float, float]:
    """Seconds for sqlite3 executemany of the file's rows in one transaction: the rows
    already in memory, and with reading them from the file; each the best of `runs`, on a
    new file each time (a single run moves by half with the disk's other work)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    columns = ", ".join(f'"{c}" TEXT' for c in COLUMNS)  # "case" is an SQL keyword
    marks = ", ".join("?" * len(COLUMNS))
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        (folder / "raw.db").unlink(missing_ok=True)
        conn = sqlite3.connect(folder / "raw.db")
        conn.execute(f"CREATE TABLE rows ({columns})")
        start = time.perf_counter()
        with conn:
            conn.executemany(f"INSERT INTO rows VALUES ({marks})", rows)
        insert_only = time.perf_counter() - start
        conn.execute("DELETE FROM rows")
        conn.commit()
        start = time.perf_counter()
        with path.open(encoding="utf-8", newline="") as handle, conn:
            reader = csv.reader(handle)
            next(reader)
            conn.executemany(f"INSERT INTO rows VALUES ({marks})", reader)
        with_reading = time.perf_counter() - start
        conn.close()
        best = (min(best[0], insert_only), min(best[1], with_reading))
    return best


def domain_seconds(cases: int) -> float:
    """Seconds to build the same events through the domain and map them to stored records,
    and nothing else: the hashing and encoding every recorded event costs."""
    from twinflow.application import Events
    from twinflow.definitions import Library
    from twinflow.domain import Case
    from twinflow.storage import locate

    flow = Library.from_env().get("twinning")

    with tempfile.TemporaryDirectory() as name:
        events = Events(env=locate(str(Path(name) / "floor.db")).env())
        start = time.perf_counter()
        for n in range(cases):
            case = None
            for action, date, by, party, extra in STORY:
                values = {"trigger": action, "party": party or None, "body": by, "decided_on": date}
                if action == "open":
                    case = Case.open(f"town-{n}", "T", ["A", "B"], flow, values, "bench")
                elif action.startswith("note:"):
                    assert case is not None
                    case.note({"kind": action[5:], "on": date, "summary": "s"}, "bench")
                else:
                    assert case is not None
                    case.decide({**values, **extra}, "bench")
            assert case is not None
            [events.mapper.to_stored_event(e) for e in case.collect_events()]
        seconds = time.perf_counter() - start
        events.close()
    return seconds


def import_seconds(path: Path, db: Path, *, catch_up: bool = True) -> tuple[float, float]:
    """Seconds of what `twinflow import` does: import_file, then (unless told not to) the
    read models caught up (exchange.catch_up_views), each part apart."""
    from twinflow.application import Register
    from twinflow.exchange import catch_up_views, import_file

    register = Register.at(str(db), create=True)
    start = time.perf_counter()
    import_file(register, path, actor="bench")
    seconds = time.perf_counter() - start
    caught_up = 0.0
    if catch_up:
        start = time.perf_counter()
        catch_up_views(register)
        caught_up = time.perf_counter() - start
    register.close()
    return seconds, caught_up


def speed(cases: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows = write_csv(folder / "rows.csv", cases)
        insert_only, with_reading = baseline(folder / "rows.csv", folder, runs=3)
        if profile:
            cProfile.runctx(
                "import_seconds(path, db, catch_up=False)",
                globals(),
                {"path": folder / "rows.csv", "db": folder / "p.db"},
                str(folder / "prof"),
            )
            pstats.Stats(str(folder / "prof")).sort_stats("tottime").print_stats(25)
            return
        ours, caught_up = import_seconds(folder / "rows.csv", folder / "twinflow.db")
        floor = domain_seconds(cases)
    print(f"import of {rows:,} rows ({cases:,} cases x {ROWS_PER_CASE}) into SQLite:")
    print(
        f"  twinflow import (command)  {ours + caught_up:7.2f} s  "
        f"{rows / (ours + caught_up):>10,.0f} rows/s  "
        f"-> {(ours + caught_up) / with_reading:.1f}x csv.reader + executemany"
    )
    print(
        f"    import_file              {ours:7.2f} s  {rows / ours:>10,.0f} rows/s  "
        f"-> {ours / with_reading:.1f}x"
    )
    print(
        f"    catch-up of read models  {caught_up:7.2f} s  {rows / caught_up:>10,.0f} rows/s  "
        f"-> {caught_up / with_reading:.1f}x"
    )
    print(
        f"  domain events + mapper     {floor:7.2f} s  {rows / floor:>10,.0f} rows/s"
        f"  (through the domain and mapper, as recording one by one does: "
        f"{floor / ours:.0%} of import_file)"
    )
    print(f"  sqlite3 executemany        {insert_only:7.2f} s  {rows / insert_only:>10,.0f} rows/s")
    print(
        f"  csv.reader + executemany   {with_reading:7.2f} s  {rows / with_reading:>10,.0f} "
        "rows/s  (the baseline of bench/run.py item b)"
    )


# ---------------------------------------------------------------------------- memory


def child(stage: str, folder: Path) -> None:
    """One stage in this process; prints its seconds and peak resident set as JSON."""
    from twinflow.application import Register

    before_kb = status_kb("VmRSS")
    start = time.perf_counter()
    if stage == "baseline":
        from twinflow import exchange, exporter, restore  # noqa: F401
    elif stage == "import":  # the whole command: import_file and the read models' catch-up
        import_seconds(folder / "rows.csv", folder / "big.db")
    elif stage.startswith("export-"):
        from twinflow.exporter import export

        fmt = stage.removeprefix("export-")
        register = Register.at(str(folder / "big.db"), create=False)
        with (folder / f"out.{fmt}").open("w", encoding="utf-8") as out:
            out.writelines(export(register, fmt))
        register.close()
    elif stage == "restore":
        from twinflow.restore import restore

        register = Register.at(str(folder / "restored.db"), create=True)
        restore(register, folder / "out.ndjson")
        register.close()
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report the
    # parent's peak (the speed run's rows) instead of its own.
    peak_kb = status_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "start_mb": before_kb / 1024}))


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc (VmRSS now, VmHWM its peak), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status: this measures on Linux only")


def memory(events: int) -> None:
    cases = events // ROWS_PER_CASE
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_csv(folder / "rows.csv", cases)
        print(f"peak memory, each stage in its own process ({cases * ROWS_PER_CASE:,} events):")
        for stage in (
            "baseline",
            "import",
            "export-ndjson",
            "export-csv",
            "export-cloudevents",
            "restore",
        ):
            done = subprocess.run(
                [sys.executable, __file__, "--child", stage, "--folder", str(folder)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rate = events / result["seconds"] if stage != "baseline" else 0
            print(
                f"  {stage:<20} peak {result['peak_mb']:6.1f} MB "
                f"(resident at start {result['start_mb']:5.1f})  {result['seconds']:7.1f} s"
                + (f"  {rate:>8,.0f} events/s" if rate else "  (python + twinflow imported)")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the speed run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events for memory")
    parser.add_argument("--profile", action="store_true", help="profile the import instead")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return
    speed(args.rows // ROWS_PER_CASE, args.profile)
    if not args.profile and not args.skip_memory:
        memory(args.events)


if __name__ == "__main__":
    main()
