"""Import of a spreadsheet or NDJSON file as one transaction: read and check every row, check
every case's whole timeline, build the events, then write them all or nothing. Also the
columns of twinflow's CSV, shared by `import` and `export --format csv`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from twinflow.errors import BadFile, InvalidInput

if TYPE_CHECKING:
    from twinflow.application import Register

# The columns of an import file, in the order `export --format csv` writes them.
COLUMNS = (
    "case",
    "workflow",
    "action",
    "by",
    "party",
    "body_name",
    "decided_on",
    "effective_on",
    "published_on",
    "scope",
    "vote",
    "reference",
    "reason",
    "source",
    "title",
    "parties",
    "summary",
)
REQUIRED = ("case", "action", "decided_on")
IMPORT_FORMATS = ("csv", "ndjson")
# A guess, on the short side, at the bytes a row of an import file holds: a file's size over it
# guesses how many rows it has before it is read (whether to share the reading among processes)
ROW_BYTES = 50
NDJSON_SUFFIXES = (".ndjson", ".jsonl")

# Called with a stage's label, how far it moved and the stage's total (for progress bars).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Problem:
    """One bad row (or line) of a file: where, which column and value, and what to do."""

    line: int
    column: str | None
    value: str | None
    reason: str  # phrased to follow "COLUMN 'VALUE' " (or "COLUMN " where no value)

    def __str__(self) -> str:
        if self.column and self.value is not None:
            return f"line {self.line}: {self.column} {self.value!r} {self.reason}"
        if self.column:
            return f"line {self.line}: {self.column} {self.reason}"
        return f"line {self.line}: {self.reason}"


@dataclass
class Summary:
    """What an import did (or, in a dry run, would do)."""

    file: str
    rows: int = 0
    cases_opened: int = 0
    cases_extended: int = 0
    decisions: int = 0
    notes: int = 0
    workflows: int = 0
    events: int = 0
    dry_run: bool = False

    def __str__(self) -> str:
        counts = (
            f"{self.cases_opened} case(s) opened, {self.cases_extended} existing case(s) "
            f"extended, {self.decisions} decision(s), {self.notes} note(s)"
        )
        if self.dry_run:
            return (
                f"checked {self.file}: {self.rows} row(s) are fine and would give {counts} "
                f"({self.events} events); nothing written (dry run)"
            )
        return f"imported {self.file}: {counts} ({self.events} events, one transaction)"


def import_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in IMPORT_FORMATS:
            raise InvalidInput(f"format {fmt!r} cannot be imported: use csv or ndjson")
        return fmt
    return "ndjson" if path.suffix.lower() in NDJSON_SUFFIXES else "csv"


def import_file(
    register: Register,
    path: Path,
    *,
    fmt: str | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Import every row of a file in one transaction, or nothing with every bad row listed."""
    from twinflow import bulk, fanout
    from twinflow.backfill import check, processes
    from twinflow.importer import processes as readers
    from twinflow.importer import read_shared
    from twinflow.spill import Spill

    fmt = import_format(path, fmt)
    problems: list[Problem] = []
    summary = Summary(path.name, dry_run=dry_run)
    # The processes that will share the reading and then the case checks of a large file,
    # started at once: each takes a while to load twinflow, which then overlaps the work
    # of the others. Those that read a span then check a run (warm by then: the dates'
    # grammar is loaded); those not needed after all end by themselves.
    guess = os.path.getsize(path) // ROW_BYTES if path.is_file() else 0
    with (
        tempfile.TemporaryDirectory(prefix="twinflow-import-") as folder,
        Spill(Path(folder) / "spill.db") as spill,
        ExitStack() as stack,
        fanout.ahead(max(readers(path), processes(guess)) - 1) as started,
    ):
        summary.rows = read_shared(
            register, path, fmt, spill, problems, progress, folder=Path(folder), started=started
        )
        # On SQLite the write may begin while the cases are checked; a problem found later
        # rolls it back, as leaving this block any other way does
        writer = None
        if not dry_run and register.location.kind == "sqlite":
            writer = stack.enter_context(bulk.Writing(register, 0, progress))
        built, views = check(
            register,
            spill,
            problems,
            summary,
            actor=actor,
            build=not dry_run,
            folder=Path(folder),
            progress=progress,
            started=started,
            writer=writer,
        )
        fanout.dismiss(started)
        if problems:
            problems.sort(key=lambda p: p.line)
            listing = "\n".join(f"  {p}" for p in problems)
            raise BadFile(
                f"{path.name} has {len(problems)} problem(s); nothing was imported. "
                f"Fix them and import the file again:\n{listing}",
                list(problems),
            )
        if writer is not None:
            spill.seal()
            writer.total = summary.events
            writer.finish([spill.path, *built], views)
        elif not dry_run:  # PostgreSQL: the rows go through this process, in batches
            spills = [spill, *(stack.enter_context(Spill(p, reading=True)) for p in built)]
            events = chain.from_iterable(s.events() for s in spills)
            bulk.append(register, events, summary.events, progress)
    return summary


def catch_up_views(register: Register, progress: Progress | None = None) -> int:
    """Bring the read models up to the log after a bulk write (import, restore), so that the
    next `status` or `list` is not the one that silently applies all of it. Called once the
    write is committed: an interrupted catch-up loses nothing, the next read resumes it."""
    pending = register.views.pending()
    if not pending:
        return 0
    report = (lambda step: progress("updating the views", step, pending)) if progress else None
    return register.views.catch_up(report)
