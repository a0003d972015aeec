"""`twinflow import`, `export` and `restore`: backfill from spreadsheets, open data, backups."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

from twinflow.cli_base import PathType, Settings, check_output_path, pass_settings

if TYPE_CHECKING:
    from pathlib import Path

# Files and logs smaller than these finish too fast for a progress bar to help.
BAR_BYTES = 1_000_000
BAR_EVENTS = 20_000


class Bars:
    """One click progress bar per stage (reading, checking, writing), on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.label: str | None = None
        self.bar: Any = None

    @property
    def on(self) -> Bars | None:
        """Itself where bars are wanted, else None: no progress is even counted."""
        return self if self.enabled else None

    def __call__(self, label: str, step: int, total: int) -> None:
        if label != self.label:
            self.close()
            self.label = label
            self.bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


@click.command("import")
@click.argument("file", type=PathType(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "ndjson"]),
    help="The file's format (default: ndjson for .ndjson/.jsonl files, else csv).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and write nothing.")
@pass_settings
def import_command(settings: Settings, file: Path, fmt: str | None, dry_run: bool) -> None:
    """Import decisions and notes from a CSV or NDJSON file, as one transaction.

    CSV: a header row naming the columns (any order; comma or semicolon; UTF-8 with or
    without BOM): case, workflow, action, by, party, body_name, decided_on, effective_on,
    published_on, scope, vote, reference, reason, source, title, parties, summary. `action` is
    `open` (with workflow, title and parties separated by ;), a decision of the case's
    workflow, or note:KIND (with summary). An empty cell means not given; source may hold
    several URLs separated by spaces. Rows may come in any order; each case's timeline must
    be legal. If any row is bad, nothing is written and every bad row is listed.

    \b
    Example:
      twinflow import twinnings.csv --dry-run
      twinflow import twinnings.csv
      twinflow export --format csv | twinflow --db copy.db import /dev/stdin --format csv
    """
    from twinflow.exchange import import_file

    bar = file.stat().st_size >= BAR_BYTES
    with _register(settings, dry_run) as (register, scratch), Bars(bar) as bars:
        summary = import_file(
            register, file, fmt=fmt, dry_run=dry_run, actor=settings.actor, progress=bars.on
        )
    if not dry_run:
        _catch_up(settings)
    if scratch:
        click.echo("(checked against an empty register: the register does not exist yet)", err=True)
    click.echo(str(summary))


def _catch_up(settings: Settings) -> None:
    """After a committed import or restore, bring the read models up to date, with a bar
    when there is much to do; outside `_register`, so an interrupt never removes the file."""
    from twinflow.exchange import catch_up_views

    register = settings.register()
    with Bars(register.views.pending() >= BAR_EVENTS) as bars:
        catch_up_views(register, bars.on)


@contextmanager
def _register(settings: Settings, dry_run: bool = False) -> Iterator[tuple[Any, bool]]:
    """The register to work on, and whether it is a scratch one. A dry run before the first
    write checks against an empty register in a scratch folder, creating nothing. Where a
    write creates the SQLite file and is then refused, the file is removed again: a refused
    file leaves nothing behind."""
    import tempfile
    from pathlib import Path

    from twinflow.application import Register
    from twinflow.storage import locate

    location = locate(settings.db)
    fresh = location.kind == "sqlite" and location.path is not None and not location.path.exists()
    with contextlib.ExitStack() as stack:
        if dry_run and fresh:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="twinflow-check-"))
            register = Register.at(str(Path(folder) / "empty.db"), settings.workflows)
        else:
            register = settings.register(create=not dry_run)
        try:
            yield register, dry_run and fresh
        except BaseException:
            register.close()
            if fresh and not dry_run and location.path is not None:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{location.path}{suffix}").unlink(missing_ok=True)
            raise
        register.close()


@click.command("export")
@click.option("--case", help="Only this case (ndjson: with the workflow versions it uses).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv", "cloudevents"]),
    default="ndjson",
    show_default=True,
    help="ndjson: the complete log, a backup for `restore`; csv: the import format; "
    "cloudevents: CloudEvents 1.0 JSON, one per line.",
)
@click.option(
    "-o",
    "--output",
    type=PathType(dir_okay=False),
    help="Write to this file (default: stdout).",
)
@click.option(
    "--source",
    help="The CloudEvents `source` naming the register "
    "(default: urn:twinflow:register:NAME, NAME from --db).",
)
@pass_settings
def export_command(
    settings: Settings, case: str | None, fmt: str, output: Path | None, source: str | None
) -> None:
    """Export the register (or one case) as a backup, as CSV, or as CloudEvents.

    \b
    Example:
      twinflow export -o backup.ndjson
      twinflow export --format csv --case coevorden-brest
      twinflow export --format cloudevents --source https://example.org/twinnings
    """
    from twinflow.exporter import export

    if output is not None:
        check_output_path(output)
    register = settings.register()
    try:
        total = register.events.recorder.max_notification_id() or 0
        with Bars(output is not None and total >= BAR_EVENTS) as bars:
            lines = export(register, fmt, case=case, source=source, progress=bars.on)
            if output is None:
                for line in lines:
                    sys.stdout.write(line)
                sys.stdout.flush()
            else:
                _write_atomically(output, lines)
    finally:
        register.close()
    if output is not None:
        click.echo(f"exported {fmt} to {output}", err=True)


def _write_atomically(path: Path, lines: Any) -> None:
    """Write beside the target and rename, so a failed export leaves no half file."""
    import tempfile
    from pathlib import Path

    folder = path.parent if str(path.parent) else Path(".")
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.writelines(lines)
        os.replace(name, path)
    except BaseException:
        os.unlink(name)
        raise


@click.command("restore")
@click.argument("file", type=PathType(exists=True, dir_okay=False))
@pass_settings
def restore_command(settings: Settings, file: Path) -> None:
    """Restore an NDJSON backup (from `export`) into a new, empty register, exactly:
    the same ids, seqs, positions, recording times, actors and hashes.

    Every hash chain is checked as the file is read; a backup that does not verify, or a
    register that already holds events, is refused and nothing is written.

    \b
    Example:
      twinflow export -o backup.ndjson
      twinflow --db restored.db restore backup.ndjson
      twinflow --db restored.db verify
    """
    from twinflow.restore import restore

    with _register(settings) as (register, _), Bars(file.stat().st_size >= BAR_BYTES) as bars:
        result = restore(register, file, progress=bars.on)
    _catch_up(settings)
    click.echo(str(result))
