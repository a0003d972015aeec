"""The `twinflow` command: the global options and the table of commands. The commands live in
the cli_*.py modules, each module imported only when one of its commands is used, and each
command imports its heavy modules inside its function: a cold start pays only for what the
command it runs needs."""

from __future__ import annotations

import signal

import click

from twinflow import __version__
from twinflow.cli_group import TwinflowGroup

# Each command's module is imported only when the command runs (or shows its own help):
# `twinflow --help` lists them with the summary kept here, the first paragraph of the
# command's help, which tests/test_cli_lazy.py checks against each command's own.
COMMANDS = {
    "admin": (
        "twinflow.cli_admin",
        "admin",
        "Set up a shared register on PostgreSQL and manage the clerks who record in it.",
    ),
    "audit": (
        "twinflow.cli_audit",
        "audit",
        "What was recorded, by whom and when, across all cases, newest last.",
    ),
    "correct": (
        "twinflow.cli_audit",
        "correct",
        "Correct event SEQ of a case: record only the fields that change, and why.",
    ),
    "decide": (
        "twinflow.cli_record",
        "decide",
        "Record a formal decision (TRIGGER) about a case.",
    ),
    "demo": (
        "twinflow.cli_record",
        "demo",
        "Record the Coevorden–Brest story in a new register and replay it.",
    ),
    "digest": (
        "twinflow.cli_audit",
        "digest",
        "Print POSITION:HASH, a running hash over the whole log, to publish (e.g. in minutes).",
    ),
    "export": (
        "twinflow.cli_exchange",
        "export_command",
        "Export the register (or one case) as a backup, as CSV, or as CloudEvents.",
    ),
    "history": (
        "twinflow.cli_read",
        "history",
        "Every event of a case in valid-time order, with the state before and after.",
    ),
    "import": (
        "twinflow.cli_exchange",
        "import_command",
        "Import decisions and notes from a CSV or NDJSON file, as one transaction.",
    ),
    "list": ("twinflow.cli_read", "list_command", "List cases with their state on a date."),
    "migrate": (
        "twinflow.cli_migrate",
        "migrate",
        "Move a case, or every case of a workflow, to another version of its workflow.",
    ),
    "note": (
        "twinflow.cli_record",
        "note",
        "Record an event that changes no state: a visit, a letter, a statement.",
    ),
    "open": ("twinflow.cli_record", "open_command", "Open a case with its founding decision."),
    "rebuild": (
        "twinflow.cli_rebuild",
        "rebuild",
        "Drop every read model (case list, steps, audit view) and rebuild it from the log.",
    ),
    "restore": (
        "twinflow.cli_exchange",
        "restore_command",
        "Restore an NDJSON backup (from `export`) into a new, empty register, exactly: "
        "the same ids, seqs, positions, recording times, actors and hashes.",
    ),
    "retract": (
        "twinflow.cli_audit",
        "retract",
        "Retract event SEQ of a case: it stays in the log, but is no longer in force.",
    ),
    "status": (
        "twinflow.cli_read",
        "status",
        "The state of a case on a date, as the register knew it at a moment.",
    ),
    "verify": (
        "twinflow.cli_audit",
        "verify",
        "Recompute every hash chain from the stored records; exit 1 naming each broken event.",
    ),
    "workflows": (
        "twinflow.cli_workflows",
        "workflows",
        "List, show, compare, draw and validate workflow definitions.",
    ),
}


@click.group(
    cls=TwinflowGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--db",
    envvar="TWINFLOW_DB",
    metavar="PATH|URL",
    help="The register: a SQLite file (default ./twinflow.db) or "
    "postgresql://USER@HOST:PORT/DBNAME. Env: TWINFLOW_DB.",
)
@click.option(
    "--actor",
    envvar="TWINFLOW_ACTOR",
    help="Who records (default: TWINFLOW_ACTOR, else your OS user name).",
)
@click.option(
    "--workflows",
    "workflows",
    envvar="TWINFLOW_WORKFLOWS",
    metavar="DIR",
    help="A folder of your own workflow files; they win over bundled ones of the "
    "same name. Env: TWINFLOW_WORKFLOWS.",
)
@click.option(
    "--lang",
    envvar="TWINFLOW_LANG",
    default="en",
    show_default=True,
    help="Language of labels in human-readable output (en, nl). Env: TWINFLOW_LANG.",
)
@click.version_option(__version__, prog_name="twinflow")
@click.pass_context
def cli(
    ctx: click.Context, db: str | None, actor: str | None, workflows: str | None, lang: str
) -> None:
    """Record formal decisions as immutable events and replay them on any date.

    \b
    Example: the twinning Coevorden–Brest
      twinflow open coevorden-brest --workflow twinning --title "Coevorden–Brest" \\
          --party Coevorden --party Brest --by council --on 2000
      twinflow decide coevorden-brest suspend --party Brest --by executive --on 2022
      twinflow status coevorden-brest --as-of 2022-06-01
      twinflow demo          # records the whole story in a new twinflow-demo.db
    """
    from twinflow.cli_base import Settings

    ctx.obj = Settings(db=db, actor=actor, workflows=workflows, lang=lang)


def main() -> None:
    # A plain `kill` ends the command as an error would: its transaction rolls back, its worker
    # processes stop and its scratch files are removed (Python's default would skip all that).
    signal.signal(signal.SIGTERM, _terminated)
    cli(prog_name="twinflow")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
