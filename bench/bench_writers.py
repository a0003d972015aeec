"""Decisions per second for 1, 2 and 4 concurrent writer processes, on SQLite and on
PostgreSQL, beside eventsourcing's own get-and-save of an equivalent plain event in the same
run (same backend, same process layout, same payload, no checks, hashes or read models).

Each writer records on a case of its own (so the figures measure throughput, not conflicts):
get the case, check the decision against the workflow and the whole timeline, save.

    python bench/bench_writers.py                  # 100 decisions per writer
    python bench/bench_writers.py --decisions 300 --pg postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

WRITERS = (1, 2, 4)
DECISION = {
    "trigger": "reaffirm",
    "party": "Coevorden",
    "body": "council",
    "body_name": None,
    "decided_on": "2024",
    "effective_on": None,
    "published_on": None,
    "scope": None,
    "vote": None,
    "reference": None,
    "reason": "continue as it is",
    "sources": [],
}


class Plain(Aggregate):
    """The baseline: an eventsourcing aggregate whose event carries the same decision."""

    @event("Opened")
    def __init__(self, title: str) -> None:
        self.title = title
        self.decisions = 0

    @event("Decided")
    def decide(self, decision: dict[str, Any]) -> None:
        self.decisions += 1


class PlainApp(Application[UUID]):
    name = "plain"


def env_of(db: str, *, create: bool) -> dict[str, str]:
    from twinflow.storage import locate

    env = locate(db).env()
    # The baseline keeps eventsourcing's defaults but for where it stores.
    wanted = ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT", "POSTGRES_DBNAME")
    wanted += ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD")
    plain = {k: v for k, v in env.items() if k in wanted}
    # Tables are created once, before the writers start: several processes creating them
    # at once fail in PostgreSQL ("tuple concurrently updated").
    return {**plain, "CREATE_TABLE": "yes" if create else "no"}


def twinflow_writer(db: str, slug: str, count: int, barrier: Any, out: Any) -> None:
    from twinflow.application import Register

    register = Register.at(db)
    barrier.wait()
    start = time.perf_counter()
    for n in range(count):
        register.decide(
            slug, "reaffirm", by="council", party="Coevorden", on="2024", reason=f"#{n}",
            actor="bench",
        )  # fmt: skip
    out.put((start, time.perf_counter()))
    register.close()


def plain_writer(db: str, slug: str, count: int, barrier: Any, out: Any) -> None:
    app = PlainApp(env=env_of(db, create=False))
    aggregate_id = UUID(slug)
    barrier.wait()
    start = time.perf_counter()
    for n in range(count):
        plain: Plain = app.repository.get(aggregate_id)
        plain.decide({**DECISION, "reason": f"#{n}"})
        app.save(plain)
    out.put((start, time.perf_counter()))
    app.close()


def twinflow_cases(db: str, writers: int) -> list[str]:
    from twinflow.application import Register

    register = Register.at(db, create=True)
    slugs = [f"twinning-{i}" for i in range(writers)]
    for slug in slugs:
        register.open_case(
            slug, workflow="twinning", title=slug, parties=["Coevorden", "Brest"],
            by="council", on="2000", actor="bench",
        )  # fmt: skip
    register.close()
    return slugs


def plain_cases(db: str, writers: int) -> list[str]:
    app = PlainApp(env=env_of(db, create=True))
    plains = [Plain(f"twinning-{i}") for i in range(writers)]
    app.save(*plains)
    app.close()
    return [str(p.id) for p in plains]


def rate(
    setup: Callable[[str, int], list[str]],
    writer: Callable[..., None],
    db: str,
    writers: int,
    count: int,
) -> float:
    """Events per second over all writers, from the first start to the last finish."""
    slugs = setup(db, writers)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=writer, args=(db, slug, count, barrier, out)) for slug in slugs
    ]
    for process in processes:
        process.start()
    spans = [out.get(timeout=600) for _ in processes]  # a worker that died fails the run
    for process in processes:
        process.join()
    return writers * count / (max(end for _, end in spans) - min(s for s, _ in spans))


@contextmanager
def sqlite_db() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="twinflow-bench-") as folder:
        yield str(Path(folder) / f"{uuid4().hex}.db")


@contextmanager
def postgres_db(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"twinflow_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_reachable(admin_url: str) -> str | None:
    import psycopg

    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).splitlines()[0]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100, help="per writer")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    backends: list[tuple[str, Callable[[], Any]]] = [("sqlite", sqlite_db)]
    problem = postgres_reachable(args.pg)
    if problem:
        print(f"PostgreSQL skipped: {problem}")
    else:
        backends.append(("postgres", lambda: postgres_db(args.pg)))
    print(f"{args.decisions} decisions per writer, each writer on a case of its own\n")
    header = (
        f"{'backend':<9} {'writers':>7} {'twinflow/s':>11} {'eventsourcing/s':>16} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for backend, make in backends:
        for writers in WRITERS:
            with make() as db:
                ours = rate(twinflow_cases, twinflow_writer, db, writers, args.decisions)
            with make() as db:
                base = rate(plain_cases, plain_writer, db, writers, args.decisions)
            print(
                f"{backend:<9} {writers:>7} {ours:>11.1f} {base:>16.1f} {ours / base:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
