"""`twinflow workflows`: list, show and validate workflow definition files."""

from __future__ import annotations

from pathlib import Path

import click

from twinflow.cli_base import Settings, format_option, pass_settings


@click.group()
def workflows() -> None:
    """List, show and validate workflow definitions.

    \b
    Example:
      twinflow workflows list
      twinflow workflows validate my-workflows/*.yaml
    """


@workflows.command("list")
@format_option("table", "json", "csv")
@pass_settings
def list_workflows(settings: Settings, fmt: str) -> None:
    """The workflows twinflow can use, and the file each comes from.

    \b
    Example:
      twinflow workflows list --format json
    """
    from twinflow.definitions import Library, label
    from twinflow.output import render

    library = Library.from_env(settings.workflows)
    rows = []
    for name, path in sorted(library.files().items()):
        flow = library.get(name)
        rows.append(
            {
                "name": name,
                "version": flow.version,
                "title": label(flow.title, settings.lang, name),
                "states": len(flow.states),
                "decisions": len(flow.trigger_names),
                "digest": flow.digest[:19],
                "file": str(path),
            }
        )
    click.echo(
        render(rows, fmt, ("name", "version", "title", "states", "decisions", "digest", "file"))
    )


@workflows.command("show")
@click.argument("name")
@format_option("table", "json")
@pass_settings
def show_workflow(settings: Settings, name: str, fmt: str) -> None:
    """The states, decisions and deciding bodies of a workflow.

    \b
    Example:
      twinflow workflows show twinning
      twinflow --lang nl workflows show twinning
    """
    from twinflow.definitions import Library, label
    from twinflow.output import table, to_json

    flow = Library.from_env(settings.workflows).get(name)
    if fmt == "json":
        click.echo(to_json({"digest": flow.digest, **flow.document}))
        return
    lang = settings.lang
    click.echo(f"{flow.name} v{flow.version}: {label(flow.title, lang, flow.name)}")
    click.echo(f"digest {flow.digest}")
    click.echo(f"opens in: {flow.state_label(flow.initial, lang)} (by {', '.join(flow.open_by)})")
    click.echo("")
    click.echo(
        table(
            [
                {
                    "state": s.name,
                    "label": label(s.labels, lang, s.name),
                    "final": s.final,
                    "decisions": ", ".join(flow.allowed_triggers(s.name)),
                }
                for s in flow.states
            ],
            ("state", "label", "final", "decisions"),
        )
    )
    click.echo("")
    click.echo(
        table(
            [
                {
                    "decision": t.trigger,
                    "label": label(t.labels, lang, t.trigger),
                    "from": ", ".join(t.sources),
                    "to": "(same)" if t.dest == "=" else t.dest,
                    "by": ", ".join(t.by),
                    "requires": ", ".join(t.requires),
                }
                for t in flow.transitions
            ],
            ("decision", "label", "from", "to", "by", "requires"),
        )
    )
    click.echo("")
    click.echo(
        "bodies: " + ", ".join(f"{b.name} ({label(b.labels, lang, b.name)})" for b in flow.bodies)
    )
    click.echo(
        "notes:  " + ", ".join(f"{n.name} ({label(n.labels, lang, n.name)})" for n in flow.notes)
    )


@workflows.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check workflow files and list every defect of every file (exit 1 if any).

    \b
    Example:
      twinflow workflows validate workflows/twinning.yaml
    """
    from twinflow.definitions import read_file

    failed = 0
    for path in files:
        _, defects = read_file(path)
        if defects:
            failed += 1
            for defect in defects:
                click.echo(f"Error: {defect}", err=True)
        else:
            click.echo(f"{path}: valid")
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) have defects", err=True)
        raise SystemExit(1)
