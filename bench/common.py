"""What bench/run.py's items share: a row of the table, timing, and measurements run in a
child process of their own (for peak memory)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinflow.application import Register

RUN = Path(__file__).resolve().parent / "run.py"
PEAKS = RUN.parent / "peaks"  # sitecustomize.py, for the worker processes
MEMORY_GOAL_MB = 200.0


@dataclass
class Row:
    item: str
    measure: str
    ours: float | None  # seconds, or MB where unit is "MB"
    baseline: float | None
    goal: float | None  # the largest ratio allowed (for MB: the largest figure)
    unit: str = "s"
    why: str = ""  # why an item was not measured

    def cells(self) -> tuple[str, ...]:
        if self.ours is None:
            return (self.item, self.measure, f"not measured: {self.why}", "", "", "", "")
        ratio = self.ours / self.baseline if self.baseline else None
        if self.unit == "MB":
            goal, met = f"< {self.goal:.0f} MB", self.goal is not None and self.ours < self.goal
        else:
            goal = f"<= {self.goal:g}x" if self.goal else "-"
            met = bool(self.goal and ratio is not None and ratio <= self.goal)
        return (
            self.item,
            self.measure,
            amount(self.ours, self.unit),
            amount(self.baseline, self.unit) if self.baseline is not None else "-",
            f"{ratio:.2f}x" if ratio is not None else "-",
            goal,
            ("yes" if met else "NO") if self.goal else "-",
        )


def amount(value: float, unit: str) -> str:
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def median_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_child(name: str, *args: str) -> dict[str, Any]:
    command = [sys.executable, str(RUN), "--child", name, *(f"--arg={a}" for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"child {name} failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, args: list[str]) -> dict[str, Any]:
    """Run one measurement in this (fresh) process: its seconds and peak resident memory,
    with the peaks of the worker processes it started added (peaks/sitecustomize.py)."""
    peaks = Path(tempfile.mkdtemp(prefix="twinflow-bench-peaks-"))
    os.environ["TWINFLOW_BENCH_PEAKS"] = str(peaks)
    sys.path.insert(0, str(PEAKS))  # passed on to the workers, which then report
    start = time.perf_counter()
    result: dict[str, Any] = {}
    if name == "import":  # what `twinflow import` does: the import, then the read models
        from twinflow.exchange import catch_up_views, import_file

        register = Register.at(args[1], create=True)
        start = time.perf_counter()
        import_file(register, Path(args[0]), actor="bench")
        result["import_seconds"] = time.perf_counter() - start
        caught_up = time.perf_counter()
        catch_up_views(register)
        result["catch_up_seconds"] = time.perf_counter() - caught_up
    elif name == "rebuild":
        register = Register.at(args[0], create=False)
        start = time.perf_counter()
        result["events"] = register.views.rebuild()
    elif name == "verify":
        register = Register.at(args[0], create=False)
        start = time.perf_counter()
        report = register.verify()
        result["holds"], result["events"] = report["holds"], report["events"]
    elif name == "read":  # item e's baseline: the events read through the recorder
        register = Register.at(args[0], create=False)
        recorder = register.events.recorder

        def plain_read() -> float:
            begun, position = time.perf_counter(), 0
            while batch := recorder.select_notifications(
                start=position, limit=1000, inclusive_of_start=False
            ):
                position = batch[-1].id
            return time.perf_counter() - begun

        plain_read()  # the file's pages read once before: the best of 3 after that
        result["best"] = min(plain_read() for _ in range(3))
    elif name == "idle":  # what opening a register costs before any work
        register = Register.at(args[0], create=False)
    else:
        raise SystemExit(f"unknown child {name!r}")
    result["seconds"] = time.perf_counter() - start
    register.close()
    result["peak_mb"] = peak_mb()
    # verify and rebuild share large logs among processes (TWINFLOW_WORKERS): each one's
    # own peak counts too, as if all peaked at once
    started = {path.stem for path in peaks.glob("*.started")}
    workers = [int(path.read_text()) / 1024 for path in peaks.iterdir() if not path.suffix]
    shutil.rmtree(peaks)
    if len(workers) != len(started):
        raise RuntimeError(
            f"{len(started) - len(workers)} of {len(started)} worker process(es) ended without "
            "their peak memory (killed?): the figure would be too low"
        )
    result["workers"] = 1 + len(workers)
    if workers:
        result["workers_peak_mb"] = max(workers)
        result["peak_mb"] += sum(workers)
    return result
