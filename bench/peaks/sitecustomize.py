"""Imported at start by every Python process that has this folder on its path: the worker
processes rebuild and verify start (fanout.py passes its path on to them). Where
TWINFLOW_BENCH_PEAKS names a folder, each marks its start there (PID.started) and writes its
own peak resident memory as it exits (PID, in kB): a worker that started and never wrote its
peak (killed) shows, and the bench refuses the figure rather than count it low.

A child's peak as the parent's getrusage(RUSAGE_CHILDREN) reports it is no measure of a
worker: Linux counts in it the parent's resident pages up to the child's exec (a process of
200 MB starting `python -c pass` reads 213 MB), so every worker seemed to weigh what the
command weighed when it started it."""

from __future__ import annotations

import atexit
import os
from pathlib import Path

FOLDER = os.environ.get("TWINFLOW_BENCH_PEAKS")


def _write_peak() -> None:
    assert FOLDER is not None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(FOLDER, str(os.getpid())).write_text(line.split()[1])  # kB


if FOLDER:
    Path(FOLDER, f"{os.getpid()}.started").touch()
    atexit.register(_write_peak)
