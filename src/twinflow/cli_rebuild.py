"""`twinflow rebuild`: drop every read model and build it again from the log."""

from __future__ import annotations

import sys

import click

from twinflow.cli_base import Settings, pass_settings


@click.command()
@pass_settings
def rebuild(settings: Settings) -> None:
    """Drop every read model (case list, steps, audit view) and rebuild it from the log.

    The read models are derived from the events, read case by case, with a progress bar
    on stderr; the events themselves are only read. It is one transaction: until it ends,
    readers see the read models as they were, and on SQLite a decision recorded meanwhile
    waits for it (up to TWINFLOW_LOCK_TIMEOUT, then "the register is busy": record it
    again). Logs of 20,000 events or more are shared among one process per core, up to
    four (TWINFLOW_WORKERS=N sets how many). The new rows wait in scratch files, removed at
    the end: on SQLite in a .twinflow-rebuild-* folder beside the register (about a sixth
    of its size), on PostgreSQL in the system's temporary folder (TMPDIR). Run it after
    restoring a backup of the events alone, if a read model is suspected to be wrong, or
    once after upgrading twinflow (on SQLite it also gives the read models' tables their
    current layout); `list`, `status` and `audit` catch up by themselves otherwise.

    \b
    Example:
      twinflow rebuild
      twinflow --db postgresql://owner@db.example.org/register rebuild
    """
    register = settings.register()
    try:
        if register.location.kind == "sqlite":
            register.views.create()  # a register from before a read model was added
        total = register.events.recorder.max_notification_id() or 0
        with click.progressbar(
            length=total, label="rebuilding the read models", file=sys.stderr
        ) as bar:
            done = register.views.rebuild(bar.update)
    finally:
        register.close()
    click.echo(f"rebuilt the read models from {done} events")
