"""The reading commands: a case's status on a date, its history, and the list of cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from twinflow.cli_base import (
    DATE,
    DateType,
    Settings,
    TimestampType,
    format_option,
    pass_settings,
)
from twinflow.errors import InvalidInput

if TYPE_CHECKING:
    from twinflow.definitions import Workflow


@click.command()
@click.argument("case")
@click.option(
    "--as-of", type=DateType(), metavar=DATE, help="The date to ask about (default: today)."
)
@click.option(
    "--known-at",
    type=TimestampType(),
    metavar="TIMESTAMP",
    help="Answer from what the register held at this moment: ISO 8601 with a zone "
    "(2024-03-14T09:30:00Z) or a plain date (end of that day, UTC).",
)
@format_option("table", "json")
@click.option(
    "--diagram",
    is_flag=True,
    help="Draw the workflow as a mermaid diagram, marking the current state and the path "
    "the case took.",
)
@pass_settings
def status(
    settings: Settings,
    case: str,
    as_of: str | None,
    known_at: str | None,
    fmt: str,
    diagram: bool,
) -> None:
    """The state of a case on a date, as the register knew it at a moment.

    \b
    Example:
      twinflow status coevorden-brest --as-of 2022-06-01
      twinflow status coevorden-brest --known-at 2024-01-01T00:00:00Z --format json
      twinflow status coevorden-brest --diagram > coevorden-brest.mmd
    """
    from twinflow import lightstatus

    if diagram:
        from twinflow.cli_workflows import case_diagram

        if fmt == "json":
            raise InvalidInput("--diagram draws mermaid text: leave out --format json")
        click.echo(case_diagram(settings, case, as_of, known_at))
        return
    # Caught-up read models of a SQLite register answer without opening the event store;
    # anything else (None) takes the full path, which gives the same answer or the error.
    light = None if known_at else lightstatus.status(settings.db, case, as_of, settings.lang)
    flow: Workflow | None = None
    if light is None:
        register = settings.register()
        result = register.status(case, as_of=as_of, known_at=known_at, lang=settings.lang)
    else:
        result, flow = light
    if fmt == "json":
        from twinflow.output import to_json

        click.echo(to_json(result))
        return
    from twinflow import languages

    if flow is None:  # the labels of the version judged by, which --known-at may make older
        flow = register.stored_workflow(result["workflow"], result["version"])
    languages.check(settings.lang, [flow])
    state = flow.state_label(result["state"], settings.lang) if result["state"] else "not open"
    if not result["certain"]:
        others = [
            flow.state_label(s, settings.lang) if s else "not open" for s in result["possible"]
        ]
        state = f"{state} (uncertain: {' or '.join(others)})"
    since = f" since {result['since']} (#{result['since_seq']})" if result["since"] else ""
    click.echo(f"{case}: {state}{since}")
    click.echo(f"  as of {result['as_of']}, as known at {result['known_at']}")
    if "note" in result:
        click.echo(f"  note: {result['note']}")


HISTORY_COLUMNS = (
    "seq",
    "effective_on",
    "kind",
    "trigger",
    "party",
    "body",
    "state_before",
    "state_after",
    "reason",
    "recorded_at",
    "actor",
    "amended",
)


@click.command()
@click.argument("case")
@click.option("--as-of", type=DateType(), metavar=DATE, help="Only events up to this date.")
@click.option(
    "--known-at",
    type=TimestampType(),
    metavar="TIMESTAMP",
    help="Show the history as the register held it at this moment.",
)
@format_option("table", "json", "csv")
@pass_settings
def history(
    settings: Settings, case: str, as_of: str | None, known_at: str | None, fmt: str
) -> None:
    """Every event of a case in valid-time order, with the state before and after.

    \b
    Example:
      twinflow history coevorden-brest
      twinflow history coevorden-brest --as-of 2021 --format csv > history.csv
    """
    from twinflow.history import HISTORY_KEYS, amendment_text
    from twinflow.output import render

    register = settings.register()
    rows = register.history(case, as_of=as_of, known_at=known_at)
    notes = []
    if fmt == "table":
        from twinflow import languages

        flow = register.workflow_at(case, known_at)
        rows = languages.history_table(rows, flow, languages.check(settings.lang, [flow]))
        for row in rows:
            row["reason"] = row["reason"] or row["summary"]
            if row.get("on_behalf_of"):  # PostgreSQL: the database role, for the clerk named
                row["actor"] = f"{row['actor']} for {row['on_behalf_of']}"
            # the table names each correction or retraction; the lines below it say what
            notes += [f"#{row['seq']} {amendment_text(c)}" for c in row["changes"]]
            row["amended"] = ", ".join(f"{c['kind']} #{c['seq']}" for c in row["changes"])
    # CSV holds every field of a row but the nested original values and changes
    flat = tuple(k for k in HISTORY_KEYS if k not in ("original", "changes"))
    columns = HISTORY_COLUMNS if fmt == "table" else flat
    click.echo(render(rows, fmt, columns))
    if notes:
        click.echo("\n" + "\n".join(notes))


@click.command("list")
@click.option("--workflow", help="Only cases of this workflow.")
@click.option("--state", help="Only cases in (or possibly in) this state.")
@click.option("--party", help="Only cases with this party.")
@click.option(
    "--as-of", type=DateType(), metavar=DATE, help="The date to ask about (default: today)."
)
@format_option("table", "json", "csv")
@pass_settings
def list_command(
    settings: Settings,
    workflow: str | None,
    state: str | None,
    party: str | None,
    as_of: str | None,
    fmt: str,
) -> None:
    """List cases with their state on a date.

    \b
    Example:
      twinflow list --state frozen
      twinflow list --party Coevorden --as-of 2022-06-01 --format csv
    """
    from twinflow.output import render

    register = settings.register()
    rows = register.list_cases(workflow=workflow, state=state, party=party, as_of=as_of)
    if fmt == "table":
        from twinflow import languages

        languages.check_library(settings.lang, register.library)
        rows = languages.cases_table(rows, register.stored_workflow, settings.lang)
    for row in rows:
        if fmt != "json":  # parties are ;-separated in twinflow's CSV, as in imports
            row["parties"] = "; ".join(row["parties"])
        if fmt == "table" and not row["certain"]:
            row["state"] = f"{row['state']}?"
    click.echo(
        render(
            rows,
            fmt,
            ("case", "state", "certain", "since", "workflow", "version", "parties", "title"),
        )
    )
