"""`twinflow migrate`: move cases to another version of their workflow, as a recorded event."""

from __future__ import annotations

from typing import Any

import click

from twinflow.cli_base import Settings, format_option, pass_settings
from twinflow.errors import InvalidInput, RuleViolation


@click.command()
@click.argument("case", required=False)
@click.option(
    "--to",
    "to",
    type=click.IntRange(min=1),
    required=True,
    metavar="VERSION",
    help="The workflow version to move to: the file's, or one stored in the register.",
)
@click.option("--workflow", help="With --all: the workflow whose cases move.")
@click.option("--all", "every", is_flag=True, help="Migrate every case of --workflow.")
@click.option("--reason", help="Why the cases move (required unless --dry-run).")
@click.option(
    "--dry-run", is_flag=True, help="Record nothing; report for every case whether it can move."
)
@format_option("table", "json")
@pass_settings
def migrate(
    settings: Settings,
    case: str | None,
    to: int,
    workflow: str | None,
    every: bool,
    reason: str | None,
    dry_run: bool,
    fmt: str,
) -> None:
    """Move a case, or every case of a workflow, to another version of its workflow.

    Each case's whole timeline is replayed against VERSION first: a case whose history is
    not a legal path there is refused, naming the first decision that fails, and then
    nothing is migrated. A migration is recorded as an event; no earlier event changes,
    and `status --known-at` before it still answers by the old version.

    \b
    Example:
      twinflow migrate coevorden-brest --to 2 --reason "v2 adds the pause decision"
      twinflow migrate --workflow twinning --to 2 --all --dry-run
      twinflow migrate --workflow twinning --to 2 --all --reason "council decision 2025/14"
    """
    from twinflow import migration
    from twinflow.output import to_json

    _check_usage(case, workflow, every)
    reports = settings.register().migrate(
        case,
        workflow=workflow,
        to=to,
        reason=reason,
        actor=settings.actor,
        dry_run=dry_run,
    )
    failed = [r for r in reports if r["outcome"] == migration.CANNOT]
    if case is not None and failed:
        raise RuleViolation(migration.refusal(failed, failed[0]["workflow"], to, every=False))
    if fmt == "json":
        click.echo(to_json(reports))
    elif not reports:
        click.echo(f"no {workflow} cases to migrate", err=True)
    for line in [] if fmt == "json" else _lines(reports):
        click.echo(line)
    if failed:
        raise RuleViolation(
            f"{len(failed)} of {len(reports)} {workflow} case(s) cannot migrate to v{to}; "
            "correct or retract the events named above, or choose another version"
        )


def _check_usage(case: str | None, workflow: str | None, every: bool) -> None:
    if case is not None and (every or workflow):
        raise InvalidInput(
            "give either a CASE or --workflow NAME --all, not both: a case migrates "
            "within its own workflow"
        )
    if case is None and not every:
        raise InvalidInput(
            "give a CASE to migrate, or --workflow NAME --all to migrate every case of a workflow"
        )
    if every and not workflow:
        raise InvalidInput("--all needs --workflow NAME: the workflow whose cases migrate")


def _lines(reports: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in reports:
        move = f"{r['workflow']} v{r['from_version']} -> v{r['to_version']}"
        if r["outcome"] == "migrated":
            lines.append(f"migrated {r['case']} (#{r['seq']}): {move}")
        elif r["outcome"] == "migrates":
            lines.append(f"would migrate {r['case']}: {move}")
        elif r["outcome"] == "cannot":
            lines.append(f"cannot migrate {r['case']}: {move}: {r['why']}")
        else:
            lines.append(f"{r['case']}: already on {r['workflow']} v{r['to_version']}")
        lines += [f"  note: {change}" for change in r["changes"]]
    return lines
