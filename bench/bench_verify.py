"""How fast `twinflow verify` and `twinflow digest` go over a large SQLite register, beside a
plain read (and a read and decode) of the same stored records through the recorder.

    python bench/bench_verify.py [--events 100000] [--repeat 3] [--keep PATH]

The register is built through `Register` and `events.save(*cases)` in large batches (not the
CLI), by bench/data.py: cases of ten events, decisions and notes on a legal path. Each figure
is the best of --repeat runs."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from twinflow import verify
from twinflow.application import Register

if __package__ in (None, ""):  # run as `python bench/bench_verify.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.data import fill

PER_CASE = 10  # events per case: the opening, decisions and notes (see bench/data.py)
BATCH = 5000  # events per save (one transaction)


def build(path: Path, events: int) -> Register:
    register = Register.at(str(path), create=True)
    for _ in fill(register, max(1, -(-(events - 1) // PER_CASE)), PER_CASE, batch=BATCH):
        pass
    return register


def best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the register here and keep it")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    path = args.keep or Path(folder.name) / "bench.db"
    start = time.perf_counter()
    register = build(path, args.events)
    recorder, mapper = register.events.recorder, register.events.mapper
    total = int(recorder.max_notification_id() or 0)
    print(f"built {total} events in {time.perf_counter() - start:.1f} s: {path}")

    def plain_read() -> None:
        assert sum(1 for _ in verify.log(recorder)) == total

    def read_and_decode() -> None:
        for _, record in verify.log(recorder):
            mapper.to_domain_event(record)

    def run_verify() -> None:
        result = register.verify()
        assert result["holds"] and result["events"] == total, result["lines"][:3]

    def run_digest() -> None:
        assert register.digest()["position"] == total

    rows = [
        ("plain read (recorder.select_notifications)", best(args.repeat, plain_read)),
        ("read + decode (mapper.to_domain_event)", best(args.repeat, read_and_decode)),
        ("verify (every chain)", best(args.repeat, run_verify)),
        ("digest (running sha256)", best(args.repeat, run_digest)),
    ]
    baseline = rows[0][1]
    print(f"{'operation':<45} {'seconds':>8} {'events/s':>10} {'x plain read':>13}")
    for name, seconds in rows:
        print(f"{name:<45} {seconds:8.3f} {total / seconds:10,.0f} {seconds / baseline:13.1f}")
    register.close()
    folder.cleanup()


if __name__ == "__main__":
    main()
