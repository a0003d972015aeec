"""twinflow's benchmark suite: one table, each figure beside a baseline measured in the same run.

    python bench/run.py                 # full sizes: 4-8 minutes on two cores
    python bench/run.py --scale small   # a tenth of the sizes, for a quick look
    python bench/run.py --keep DIR      # keep the 1,000,000-event register in DIR, reuse it

Items a-g of issue 6; the goals are targets, never assertions. Work that must be measured in a
process of its own (peak memory, cold start) runs in child processes of this script."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, items
from bench.common import Row

SIZES = {
    "full": {"decisions": 200, "rows": 100_000, "long": 10_000, "cases": 100_000, "runs": 15},
    "small": {"decisions": 50, "rows": 10_000, "long": 1_000, "cases": 10_000, "runs": 7},
}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load {load:.1f} at start"


def versions() -> str:
    import sqlite3

    names = ("twinflow", "eventsourcing", "click", "edtf", "transitions")
    found = [f"{name} {version(name)}" for name in names]
    return ", ".join(
        [f"Python {platform.python_version()}", *found, f"SQLite {sqlite3.sqlite_version}"]
    )


def render(rows: list[Row]) -> str:
    header = ("item", "measure", "twinflow", "baseline", "ratio", "goal", "met")
    body = [r.cells() for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SIZES), default="full")
    parser.add_argument("--keep", type=Path, help="a folder for the large registers, reused")
    parser.add_argument("--only", help="comma-separated items to run, e.g. a,c,f")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement in a process of its own; prints one JSON line
        print(json.dumps(common.child(args.child, args.arg)))
        return
    sizes = SIZES[args.scale]
    wanted = set((args.only or "a,b,c,d,e,f").split(","))
    started = time.perf_counter()
    print(f"twinflow benchmarks, scale {args.scale}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}", flush=True)
    scratch = tempfile.TemporaryDirectory(prefix="twinflow-bench-")
    folder = args.keep or Path(scratch.name)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    steps = [
        ("a", lambda: items.record(Path(scratch.name), sizes["decisions"])),
        ("b", lambda: items.bulk_import(Path(scratch.name), sizes["rows"])),
        ("c", lambda: items.status(Path(scratch.name), sizes["long"], sizes["runs"] * 20)),
        ("e", lambda: items.log_wide(folder, sizes["cases"])),  # also builds d's read model
        ("d", lambda: items.listing(folder, sizes["cases"])),
        ("f", lambda: items.cold_start(Path(scratch.name), sizes["runs"])),
    ]
    for name, work in steps:
        if name not in wanted:
            continue
        print(f"  measuring {name} ...", file=sys.stderr, flush=True)
        rows += work()
    print()
    print(render(sorted(rows, key=lambda r: r.item)))
    print()
    print(
        f"(whole run {time.perf_counter() - started:.0f} s; ratio = twinflow / baseline; "
        "times are the best of several runs unless the measure says otherwise)"
    )
    scratch.cleanup()


if __name__ == "__main__":
    main()
