"""`twinflow correct`, `retract`, `audit`, `verify` and `digest`: changing the record without
editing it, who recorded what, and evidence that nobody edited it behind twinflow's back."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from twinflow.cli_base import DATE, DateType, Settings, TimestampType, format_option, pass_settings
from twinflow.errors import StorageError

if TYPE_CHECKING:
    from twinflow.application import Register

LARGE = 10_000  # events; below this verify is quick enough to need no progress bar
AUDIT_COLUMNS = (
    "position",
    "recorded_at",
    "actor",
    "on_behalf_of",
    "case",
    "seq",
    "kind",
    "detail",
)


@click.command()
@click.argument("case")
@click.argument("seq", type=click.IntRange(min=1))
@click.option("--why", required=True, help="Why the event is corrected (kept in the record).")
@click.option("--on", "on", type=DateType(), metavar=DATE, help="The corrected decision date.")
@click.option("--effective", type=DateType(), metavar=DATE, help="The corrected effective date.")
@click.option("--published", type=DateType(), metavar=DATE, help="The corrected publication date.")
@click.option("--by", "by", metavar="KIND", help="The corrected kind of deciding body.")
@click.option("--party", help="The corrected deciding party (one of the case's).")
@click.option("--body-name", help="The corrected name of the deciding body.")
@click.option("--scope", help="The corrected scope ('' clears it).")
@click.option("--vote", help="The corrected vote ('' clears it).")
@click.option("--ref", "reference", help="The corrected reference number ('' clears it).")
@click.option("--reason", help="The corrected reason ('' clears it).")
@click.option(
    "--source", "sources", multiple=True, help="The corrected sources, all of them (repeatable)."
)
@click.option("--kind", metavar="KIND", help="A note's corrected kind (visit, letter, ...).")
@click.option("--summary", help="A note's corrected summary.")
@pass_settings
def correct(
    settings: Settings,
    case: str,
    seq: int,
    why: str,
    on: str | None,
    effective: str | None,
    published: str | None,
    by: str | None,
    party: str | None,
    body_name: str | None,
    scope: str | None,
    vote: str | None,
    reference: str | None,
    reason: str | None,
    sources: tuple[str, ...],
    kind: str | None,
    summary: str | None,
) -> None:
    """Correct event SEQ of a case: record only the fields that change, and why.

    Nothing is edited: the correction is a new event; `history` shows the original values
    beside the corrected ones, and `--known-at` still answers as the register was before.

    \b
    Example:
      twinflow correct coevorden-brest 5 --effective 2022-03 \\
          --why "the minutes date the suspension to March 2022"
      twinflow correct coevorden-brest 2 --summary "Delegation at the 1000th anniversary" \\
          --why "typo in the summary"
    """
    from twinflow.history import changed_fields

    result = settings.register(create=True).correct(
        case,
        seq,
        why=why,
        on=on,
        effective=effective,
        published=published,
        by=by,
        party=party,
        body_name=body_name,
        scope=scope,
        vote=vote,
        reference=reference,
        reason=reason,
        sources=sources,
        kind=kind,
        summary=summary,
        actor=settings.actor,
    )
    fields = changed_fields(  # as history states it: a defaulted effective date by its value
        next(
            (
                c["fields"]
                for r in settings.register().history(case)
                for c in r["changes"]
                if c["seq"] == result["seq"]
            ),
            result["changes"],
        )
    )
    click.echo(f"corrected #{seq} of {case} (#{result['seq']}): {fields}{_moved(result)}")


@click.command()
@click.argument("case")
@click.argument("seq", type=click.IntRange(min=1))
@click.option("--why", required=True, help="Why the event is retracted (kept in the record).")
@pass_settings
def retract(settings: Settings, case: str, seq: int, why: str) -> None:
    """Retract event SEQ of a case: it stays in the log, but is no longer in force.

    The opening cannot be retracted: correct it, or open a new case.

    \b
    Example:
      twinflow retract coevorden-brest 4 --why "recorded on the wrong case"
    """
    result = settings.register(create=True).retract(case, seq, why=why, actor=settings.actor)
    click.echo(f"retracted #{seq} {result['what']} of {case} (#{result['seq']}){_moved(result)}")


@click.command()
@click.option("--actor", "who", help="Only what this actor recorded.")
@click.option("--case", help="Only events of this case.")
@click.option(
    "--since",
    type=TimestampType(),
    metavar="TIMESTAMP",
    help="Only events recorded at or after this moment (a plain date: from its start).",
)
@click.option(
    "--until",
    type=TimestampType(),
    metavar="TIMESTAMP",
    help="Only events recorded at or before this moment (a plain date: to its end).",
)
@format_option("table", "json", "csv")
@pass_settings
def audit(
    settings: Settings,
    who: str | None,
    case: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
) -> None:
    """What was recorded, by whom and when, across all cases, newest last.

    \b
    Example:
      twinflow audit --actor griffie-coevorden --since 2024-03-01
      twinflow audit --case coevorden-brest --format csv > audit.csv
    """
    from twinflow.output import render

    register = settings.register()
    with _progress(register.views.pending(), "updating the audit view") as progress:
        rows = register.audit(actor=who, case=case, since=since, until=until, progress=progress)
    if not rows and fmt == "table":
        click.echo("no recorded events match", err=True)
        return
    click.echo(render(rows, fmt, AUDIT_COLUMNS))


@click.command()
@click.option("--case", help="Check only this case's chain.")
@click.option(
    "--digest",
    "published",
    metavar="POSITION:HASH",
    help="Also prove the log still holds the events a published `twinflow digest` covered.",
)
@click.option(
    "--reinstall-guards",
    is_flag=True,
    help="Where the append-only guards are missing: put them back once every chain holds.",
)
@pass_settings
def verify(
    settings: Settings, case: str | None, published: str | None, reinstall_guards: bool
) -> None:
    """Recompute every hash chain from the stored records; exit 1 naming each broken event.

    Logs of 20,000 events or more are shared between two processes, where there are two
    cores (TWINFLOW_WORKERS=N sets how many: more is faster on more cores, and takes more
    memory; 1 on a machine busy with other work).

    \b
    Example:
      twinflow verify
      twinflow verify --case coevorden-brest
      twinflow verify --digest 1042:5f0c...e9   # as printed by `twinflow digest`
    """
    register = _open_unguarded(settings)
    scanned = register.size() if case is None or published else 0  # --case reads one case
    with _progress(scanned, "verifying") as progress:
        result = register.verify(case=case, digest=published, progress=progress)
    for line in result["lines"]:
        click.echo(line)
    digest = result["digest"]
    if digest is not None and not digest["holds"]:
        click.echo(f"digest {digest['position']}:{digest['hash'][:12]}...: {digest['problem']}")
    missing = register.missing_guards
    if missing:
        click.echo(
            f"register: append-only guards missing ({', '.join(missing)}): the database no "
            "longer refuses UPDATE and DELETE"
        )
    where = register.location.describe()
    if result["broken"]:
        also = " and the published digest no longer holds" if digest and not digest["holds"] else ""
        raise StorageError(
            f"the register {where} does not verify: "
            f"{_counted(len(result['broken']), 'broken event')}{also}; its stored records were "
            "changed outside twinflow: restore it from a backup"
        )
    if not result["holds"]:
        raise StorageError(
            f"the register {where} does not match the published digest, though its chains hold: "
            "events were deleted, moved or rewritten whole; check that the digest was copied "
            "exactly, else restore the register from a backup"
        )
    what = f"case {case}" if case else _counted(result["cases"], "case")
    workflows = f" and {_counted(result['workflows'], 'workflow')}" if not case else ""
    click.echo(
        f"verified {_counted(result['events'], 'event')} in {what}{workflows}: all chains hold"
    )
    if digest is not None:
        click.echo(f"the first {digest['position']} events match the published digest")
    if missing and reinstall_guards and not case:
        register.reinstall_guards()
        click.echo(f"reinstalled the append-only guards: {', '.join(missing)}", err=True)
    elif missing and case:
        raise StorageError(
            f"the register {where} has lost its append-only guards; only case {case} was "
            "checked, and its chain holds: check the whole log and put the guards back with "
            "`twinflow verify --reinstall-guards` (without --case)"
        )
    elif missing:
        raise StorageError(
            f"the register {where} has lost its append-only guards; "
            "its chains hold, so put the guards back with `twinflow verify --reinstall-guards`"
        )


@click.command()
@pass_settings
def digest(settings: Settings) -> None:
    """Print POSITION:HASH, a running hash over the whole log, to publish (e.g. in minutes).

    `twinflow verify --digest POSITION:HASH` later proves the log still holds exactly those
    first POSITION events, unchanged: events may only have been added after them.

    \b
    Example:
      twinflow digest
      twinflow verify --digest "$(twinflow digest)"
    """
    register = settings.register()
    with _progress(register.size(), "hashing") as progress:
        result = register.digest(progress)
    click.echo(result["digest"])


def _open_unguarded(settings: Settings) -> Register:
    """verify is the one command that opens a register that lost its guards: to report it."""
    from twinflow.application import Register

    return Register.at(settings.db, settings.workflows, create=False, unguarded_ok=True)


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long work; none for a small register."""
    if total <= LARGE:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _moved(result: dict[str, object]) -> str:
    before, after = result["state_before"], result["state_after"]
    return f"; latest state {before} -> {after}" if before != after else ""


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
