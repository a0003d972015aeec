"""The recording commands (`open`, `decide`, `note`) and `demo`: each parses, makes one
application call and prints what was recorded."""

from __future__ import annotations

import os
from typing import Any

import click

from twinflow.cli_base import DATE, DateType, Settings, decision_options, pass_settings
from twinflow.errors import InvalidInput


@click.command("open")
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
    from twinflow.decisions import check_opening
    from twinflow.definitions import Library

    opening: dict[str, Any] = dict(
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
    )
    from twinflow import languages

    # Checked before the register is touched: a refused first `open` leaves no new file.
    library = Library.from_env(settings.workflows)
    check_opening(library, case, **opening)
    flow = library.get(workflow)
    lang = languages.check(settings.lang, [flow])
    register = settings.register(create=True)
    result = register.open_case(case, actor=settings.actor, **opening)
    click.echo(
        f"opened {result['case']} (#1): {result['workflow']} v{result['version']}, "
        f"{flow.state_label(result['state'], lang)} from {result['effective_on']}"
    )


@click.command()
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
    from twinflow import languages

    register = settings.register()  # a case to decide on needs an existing register
    flow = register.workflow_at(case)  # for the labels, checked before anything is recorded
    lang = languages.check(settings.lang, [flow])
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
    before, after = (flow.state_label(result[k], lang) for k in ("state_before", "state_after"))
    moved = result["state_before"] != result["state_after"]
    change = f"{before} -> {after}" if moved else f"stays {after}"
    verb = "would record" if dry_run else "recorded"
    click.echo(
        f"{verb} {trigger} on {case} (#{result['seq']}), effective "
        f"{result['effective_on']}: {change}"
    )


@click.command()
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
    from twinflow import languages

    register = settings.register()  # a case to note on needs an existing register
    flow = register.workflow_at(case)  # for the labels, checked before anything is recorded
    lang = languages.check(settings.lang, [flow])
    result = register.note(
        case, kind, on=on, summary=summary, party=party, sources=sources, actor=settings.actor
    )
    shown = languages.kind_label(flow.notes, kind, lang)
    click.echo(f"noted {shown} on {case} (#{result['seq']}) on {result['on']}")


# ---------------------------------------------------------------------------- demo


@click.command()
@click.option(
    "--db",
    "demo_db",
    default="twinflow-demo.db",
    show_default=True,
    metavar="PATH",
    help="A new SQLite file to record the story in (or the global --db, when given).",
)
@pass_settings
@click.pass_context
def demo(ctx: click.Context, settings: Settings, demo_db: str) -> None:
    """Record the Coevorden–Brest story in a new register and replay it.

    \b
    Example:
      twinflow demo
      twinflow --db twinflow-demo.db history coevorden-brest
    """
    from click.core import ParameterSource

    from twinflow.demo import run

    # Only an explicit global --db redirects the demo, never TWINFLOW_DB from the
    # environment: the demo must not record its story into a real register.
    parent = ctx.parent
    if (
        parent is not None
        and settings.db is not None
        and parent.get_parameter_source("db") == ParameterSource.COMMANDLINE
    ):
        own = ctx.get_parameter_source("demo_db") == ParameterSource.COMMANDLINE
        if own and demo_db != settings.db:
            raise InvalidInput(
                f"two registers for the demo: --db {settings.db!r} before `demo` and "
                f"--db {demo_db!r} after it; give only one"
            )
        demo_db = settings.db
    if "://" in demo_db:
        from twinflow.storage import _without_password

        raise InvalidInput(
            f"the demo records into a new SQLite file, not {_without_password(demo_db)!r}: "
            "give --db a new file path such as twinflow-demo.db"
        )
    if os.path.exists(demo_db):
        raise InvalidInput(
            f"{demo_db!r} already exists: the demo records into a new file; "
            "remove it or give another --db"
        )
    click.echo(run(demo_db, settings.workflows, settings.lang))
