"""The `twinflow` command: thin click code that parses, makes one application call, prints.
Heavy modules are imported inside the commands so that `--help` stays fast."""

from __future__ import annotations

import os

import click

from twinflow import __version__
from twinflow.cli_base import (
    DATE,
    DateType,
    Settings,
    TimestampType,
    TwinflowGroup,
    decision_options,
    format_option,
    pass_settings,
)
from twinflow.cli_workflows import workflows
from twinflow.errors import InvalidInput


@click.group(cls=TwinflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = Settings(db=db, actor=actor, workflows=workflows, lang=lang)


def main() -> None:
    cli(prog_name="twinflow")


# ---------------------------------------------------------------------------- recording


@cli.command("open")
@click.argument("case")
@click.option("--workflow", required=True, help="The workflow the case follows, e.g. twinning.")
@click.option("--title", required=True, help="A title, e.g. 'Twinning Coevorden–Brest'.")
@click.option(
    "--party",
    "parties",
    multiple=True,
    required=True,
    help="A party to the case (repeat for each).",
)
@click.option(
    "--by",
    "by",
    required=True,
    metavar="KIND",
    help="The kind of body that took the founding decision, e.g. council.",
)
@decision_options
@pass_settings
def open_command(
    settings: Settings,
    case: str,
    workflow: str,
    title: str,
    parties: tuple[str, ...],
    by: str,
    on: str,
    effective: str | None,
    body_name: str | None,
    reason: str | None,
    reference: str | None,
    sources: tuple[str, ...],
) -> None:
    """Open a case with its founding decision.

    CASE is a short name of lower-case letters, digits and hyphens.

    \b
    Example:
      twinflow open coevorden-brest --workflow twinning \\
          --title "Twinning Coevorden–Brest" --party Coevorden --party Brest \\
          --by council --on 2000 --reason "economic and logistic ties"
    """
    register = settings.register(create=True)
    result = register.open_case(
        case,
        workflow=workflow,
        title=title,
        parties=parties,
        by=by,
        on=on,
        effective=effective,
        body_name=body_name,
        reason=reason,
        reference=reference,
        sources=sources,
        actor=settings.actor,
    )
    click.echo(
        f"opened {result['case']} (#1): {result['workflow']} v{result['version']}, "
        f"{result['state']} from {result['effective_on']}"
    )


@cli.command()
@click.argument("case")
@click.argument("trigger")
@click.option(
    "--by",
    "by",
    required=True,
    metavar="KIND",
    help="The kind of deciding body: council, executive, committee, mayor, ...",
)
@click.option("--party", required=True, help="The party that decided (one of the case's).")
@decision_options
@click.option("--published", type=DateType(), metavar=DATE, help="When it was published.")
@click.option("--scope", help="What the decision covers, e.g. 'formal contacts only'.")
@click.option("--vote", help="The vote, e.g. '21-4'.")
@click.option("--dry-run", is_flag=True, help="Check the decision and record nothing.")
@pass_settings
def decide(
    settings: Settings,
    case: str,
    trigger: str,
    by: str,
    party: str,
    on: str,
    effective: str | None,
    published: str | None,
    body_name: str | None,
    scope: str | None,
    vote: str | None,
    reason: str | None,
    reference: str | None,
    sources: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Record a formal decision (TRIGGER) about a case.

    \b
    Example:
      twinflow decide coevorden-brest freeze --party Coevorden --by executive \\
          --body-name "college van B&W Coevorden" --on 2024-03 \\
          --reason "formal contacts stop; informal human-rights contacts stay supported"
    """
    register = settings.register(create=not dry_run)
    result = register.decide(
        case,
        trigger,
        by=by,
        party=party,
        on=on,
        effective=effective,
        published=published,
        body_name=body_name,
        scope=scope,
        vote=vote,
        reason=reason,
        reference=reference,
        sources=sources,
        actor=settings.actor,
        dry_run=dry_run,
    )
    change = (
        f"{result['state_before']} -> {result['state_after']}"
        if result["state_before"] != result["state_after"]
        else f"stays {result['state_after']}"
    )
    verb = "would record" if dry_run else "recorded"
    click.echo(
        f"{verb} {trigger} on {case} (#{result['seq']}), effective "
        f"{result['effective_on']}: {change}"
    )


@cli.command()
@click.argument("case")
@click.argument("kind")
@click.option(
    "--on",
    "on",
    type=DateType(),
    required=True,
    metavar=DATE,
    help="When it happened: 2019, 2019-05, 2019-05-14, ...",
)
@click.option("--summary", required=True, help="What happened.")
@click.option("--party", help="The party concerned (one of the case's).")
@click.option("--source", "sources", multiple=True, help="A URL or document id (repeatable).")
@pass_settings
def note(
    settings: Settings,
    case: str,
    kind: str,
    on: str,
    summary: str,
    party: str | None,
    sources: tuple[str, ...],
) -> None:
    """Record an event that changes no state: a visit, a letter, a statement.

    \b
    Example:
      twinflow note coevorden-brest visit --on 2019 --party Coevorden \\
          --summary "Delegation visits Brest for its 1000th anniversary"
    """
    register = settings.register(create=True)
    result = register.note(
        case, kind, on=on, summary=summary, party=party, sources=sources, actor=settings.actor
    )
    click.echo(f"noted {kind} on {case} (#{result['seq']}) on {result['on']}")


# ---------------------------------------------------------------------------- reading


@cli.command()
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
@pass_settings
def status(
    settings: Settings, case: str, as_of: str | None, known_at: str | None, fmt: str
) -> None:
    """The state of a case on a date, as the register knew it at a moment.

    \b
    Example:
      twinflow status coevorden-brest --as-of 2022-06-01
      twinflow status coevorden-brest --known-at 2024-01-01T00:00:00Z --format json
    """
    from twinflow.output import to_json

    register = settings.register()
    result = register.status(case, as_of=as_of, known_at=known_at, lang=settings.lang)
    if fmt == "json":
        click.echo(to_json(result))
        return
    flow = register.workflow_of(register.get_case(case))
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
)
HISTORY_CSV = (
    "seq",
    "kind",
    "trigger",
    "effective_on",
    "decided_on",
    "published_on",
    "party",
    "body",
    "body_name",
    "scope",
    "vote",
    "reference",
    "reason",
    "summary",
    "sources",
    "recorded_at",
    "actor",
    "state_before",
    "state_after",
)


@cli.command()
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
    from twinflow.output import render

    rows = settings.register().history(case, as_of=as_of, known_at=known_at)
    if fmt == "table":
        for row in rows:
            row["reason"] = row["reason"] or row["summary"]
    columns = HISTORY_COLUMNS if fmt == "table" else HISTORY_CSV
    click.echo(render(rows, fmt, columns))


@cli.command("list")
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

    rows = settings.register().list_cases(workflow=workflow, state=state, party=party, as_of=as_of)
    for row in rows:
        if fmt == "table" and not row["certain"]:
            row["state"] = f"{row['state']}?"
    click.echo(
        render(
            rows,
            fmt,
            ("case", "state", "certain", "since", "workflow", "version", "parties", "title"),
        )
    )


# ---------------------------------------------------------------------------- demo


@cli.command()
@click.option(
    "--db",
    "demo_db",
    default="twinflow-demo.db",
    show_default=True,
    metavar="PATH",
    help="A new SQLite file to record the story in.",
)
@pass_settings
def demo(settings: Settings, demo_db: str) -> None:
    """Record the Coevorden–Brest story in a new register and replay it.

    \b
    Example:
      twinflow demo
      twinflow --db twinflow-demo.db history coevorden-brest
    """
    from twinflow.demo import run

    if os.path.exists(demo_db):
        raise InvalidInput(
            f"{demo_db!r} already exists: the demo records into a new file; "
            "remove it or give another --db"
        )
    click.echo(run(demo_db, settings.workflows))


cli.add_command(workflows)
