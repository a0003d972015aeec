"""`twinflow workflows`: list, show, compare, draw and validate workflow definitions.

A workflow's current version is its file (`NAME.yaml` in a --workflows folder or the bundled
ones); every earlier version a case used lives on in the register, where `show --version`,
`diff` and `diagram --version` find it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from twinflow.cli_base import (
    PathType,
    Settings,
    check_output_path,
    format_option,
    pass_settings,
)

if TYPE_CHECKING:
    from pathlib import Path

    from twinflow.definitions import Workflow

VERSION = click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    metavar="N",
    help="A version other than the file's: one stored in the register.",
)


@click.group()
def workflows() -> None:
    """List, show, compare, draw and validate workflow definitions.

    \b
    Example:
      twinflow workflows list
      twinflow workflows diff twinning 1 2
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
    from twinflow import languages
    from twinflow.definitions import Library, label
    from twinflow.output import render

    library = Library.from_env(settings.workflows)
    flows = {name: library.get(name) for name in sorted(library.files())}
    if fmt == "table":
        languages.check(settings.lang, list(flows.values()))
    rows = [
        {
            "name": name,
            "version": flow.version,
            "title": label(flow.title, settings.lang, name),
            "states": len(flow.states),
            "decisions": len(flow.trigger_names),
            "languages": " ".join(languages.languages([flow])),
            "digest": flow.digest[:19],
            "file": str(library.files()[name]),
        }
        for name, flow in flows.items()
    ]
    columns = ("name", "version", "title", "states", "decisions", "languages", "digest", "file")
    click.echo(render(rows, fmt, columns))


@workflows.command("show")
@click.argument("name")
@VERSION
@format_option("table", "json")
@pass_settings
def show_workflow(settings: Settings, name: str, version: int | None, fmt: str) -> None:
    """The states, decisions and deciding bodies of a workflow version.

    \b
    Example:
      twinflow workflows show twinning
      twinflow --lang nl workflows show twinning
      twinflow workflows show twinning --version 1 --format json
    """
    from twinflow import languages
    from twinflow.definitions import label
    from twinflow.output import table, to_json

    flow, source = find_version(settings, name, version)
    if fmt == "json":
        click.echo(to_json({"digest": flow.digest, **flow.document}))
        return
    lang = languages.check(settings.lang, [flow])
    click.echo(f"{flow.name} v{flow.version}: {label(flow.title, lang, flow.name)}")
    click.echo(f"digest {flow.digest}")
    click.echo(f"from {source}")
    click.echo(
        f"opens in: {flow.state_label(flow.initial, lang)} "
        f"(by {', '.join(flow.open_by) or 'no body kind'})"
    )
    click.echo("")
    states = [
        {
            "state": s.name,
            "label": label(s.labels, lang, s.name),
            "final": s.final,
            "decisions": ", ".join(flow.allowed_triggers(s.name)),
        }
        for s in flow.states
    ]
    click.echo(table(states, ("state", "label", "final", "decisions")))
    click.echo("")
    decisions = [
        {
            "decision": t.trigger,
            "label": label(t.labels, lang, t.trigger),
            "from": ", ".join(t.sources),
            "to": "(same)" if t.dest == "=" else t.dest,
            "by": ", ".join(t.by),
            "requires": ", ".join(t.requires),
        }
        for t in flow.transitions
    ]
    click.echo(table(decisions, ("decision", "label", "from", "to", "by", "requires")))
    click.echo("")
    click.echo(
        "bodies: " + ", ".join(f"{b.name} ({label(b.labels, lang, b.name)})" for b in flow.bodies)
    )
    click.echo(
        "notes:  " + ", ".join(f"{n.name} ({label(n.labels, lang, n.name)})" for n in flow.notes)
    )


@workflows.command("diff")
@click.argument("name")
@click.argument("old", type=click.IntRange(min=1), metavar="A")
@click.argument("new", type=click.IntRange(min=1), metavar="B")
@format_option("table", "json")
@pass_settings
def diff_workflow(settings: Settings, name: str, old: int, new: int, fmt: str) -> None:
    """What changed from version A to version B of a workflow: states, decisions, which
    body kinds may take them (authority) and the fields they require.

    \b
    Example:
      twinflow workflows diff twinning 1 2
      twinflow workflows diff twinning 1 2 --format json
    """
    from twinflow import languages
    from twinflow.output import to_json
    from twinflow.versions import diff

    before, _ = find_version(settings, name, old)
    after, _ = find_version(settings, name, new)
    found = diff(before, after)
    if fmt == "json":
        click.echo(to_json([d.as_dict() for d in found]))
        return
    lang = languages.check(settings.lang, [before, after])
    click.echo(f"{name} v{old} -> v{new}: {len(found)} difference(s)")
    signs = {"added": "+", "removed": "-", "changed": "~"}
    for d in found:
        shown = _label(before if d.change == "removed" else after, d.what, d.name, lang)
        named = d.name if shown == d.name else f"{d.name} ({shown})"
        detail = "" if d.value == d.name else f": {d.value}"
        click.echo(f"{signs[d.change]} {d.what} {named}{detail}")


def _label(flow: Workflow, what: str, name: str, lang: str) -> str:
    from twinflow.languages import kind_label
    from twinflow.versions import OPENING

    if what in ("state", "final", "initial"):
        return flow.state_label(name, lang)
    if what in ("body", "note"):
        return kind_label(flow.bodies if what == "body" else flow.notes, name, lang) or name
    return name if name == OPENING else flow.trigger_label(name, lang)


@workflows.command("diagram")
@click.argument("name")
@VERSION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("mermaid", "dot", "svg", "png")),
    default="mermaid",
    show_default=True,
    help="mermaid and dot are text; svg and png need graphviz's `dot` program.",
)
@click.option("--output", "-o", type=PathType(dir_okay=False), help="Write to this file.")
@pass_settings
def diagram_workflow(
    settings: Settings, name: str, version: int | None, fmt: str, output: Path | None
) -> None:
    """Draw a workflow version: its states, and the decisions between them.

    \b
    Example:
      twinflow workflows diagram twinning > twinning.mmd
      twinflow --lang nl workflows diagram twinning --format svg -o twinning.svg
      twinflow workflows diagram twinning --version 1 --format dot | dot -Tpng > v1.png
    """
    from twinflow import languages
    from twinflow.diagrams import render

    if output is not None:
        check_output_path(output)
    flow, _ = find_version(settings, name, version)
    drawn = render(flow, fmt, languages.check(settings.lang, [flow]))
    if output is not None:
        data = drawn if isinstance(drawn, bytes) else (drawn + "\n").encode()
        output.write_bytes(data)
        click.echo(f"wrote the {fmt} diagram of {flow.name} v{flow.version} to {output}", err=True)
    elif isinstance(drawn, bytes):
        import sys

        if fmt == "png" and sys.stdout.isatty():
            from twinflow.errors import InvalidInput

            raise InvalidInput("a png is binary: give --output FILE, or redirect to a file")
        click.echo(drawn, nl=False)  # click writes bytes to the binary stream beneath
    else:
        click.echo(drawn)


@workflows.command("validate")
@click.argument("files", nargs=-1, required=True, type=PathType())
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
def validate(files: tuple[Path, ...], strict: bool) -> None:
    """Check workflow files: every defect of every file (exit 1 if any), and warnings about
    states a case can enter but never leave, decisions no body kind may take, and states
    only reachable through a final one (exit 0 unless --strict).

    \b
    Example:
      twinflow workflows validate workflows/twinning.yaml
      twinflow workflows validate --strict my-workflows/*.yaml
    """
    from twinflow.definitions import read_file
    from twinflow.lint import lint_file

    failed = warned = 0
    for path in files:
        _, defects = read_file(path)
        warnings = lint_file(path) if path.is_file() else []
        for defect in defects:
            click.echo(f"Error: {defect}", err=True)
        for warning in warnings:
            click.echo(f"Warning: {warning}", err=True)
        failed += bool(defects)
        warned += bool(warnings)
        if not defects:
            counted = f", {len(warnings)} warning(s)" if warnings else ""
            click.echo(f"{path}: valid{counted}")
    if failed:
        click.echo(f"{failed} of {len(files)} file(s) have defects", err=True)
    if strict and warned:
        click.echo(f"{warned} of {len(files)} file(s) have warnings (--strict)", err=True)
    if failed or (strict and warned):
        raise SystemExit(1)


def find_version(settings: Settings, name: str, version: int | None) -> tuple[Workflow, str]:
    """A workflow version and where it was found: the file, or the register's store."""
    from twinflow.definitions import Library
    from twinflow.errors import NotFound, StorageError

    library = Library.from_env(settings.workflows)
    path = library.files().get(name)
    if path is not None or version is None:
        current = library.get(name)  # NotFound names the known workflows
        if version in (None, current.version):
            return current, f"the file {path}"
    try:
        register = settings.register()
    except StorageError as error:
        held = f"the file {path} holds v{library.get(name).version}" if path else "no file has it"
        raise NotFound(
            f"workflow {name!r} v{version} is not in the workflow files ({held}), and the "
            f"register that would store it cannot be read: {error}"
        ) from None
    try:
        return register.workflow_version(name, version), "the register's store"
    finally:
        register.close()


def case_diagram(settings: Settings, case: str, as_of: str | None, known_at: str | None) -> str:
    """The mermaid diagram of a case's workflow version (as in force at `known_at`), its
    current state and the path it took up to `as_of` marked."""
    from twinflow import languages
    from twinflow.diagrams import Passage, render

    register = settings.register()
    try:
        flow = register.workflow_at(case, known_at)
        lang = languages.check(settings.lang, [flow])
        rows = register.history(case, as_of=as_of, known_at=known_at)
        state = register.status(case, as_of=as_of, known_at=known_at)["state"]
    finally:
        register.close()
    path = [
        Passage(row["state_before"], row["state_after"], row["effective_on"])
        for row in rows
        if row["kind"] in ("opened", "decided") and not row.get("retracted")
    ]
    # The path ends where `status` says the case is: a pending imprecise decision after it is
    # not yet part of the way taken.
    while path and path[-1].after != state:
        path.pop()
    return str(render(flow, "mermaid", lang, path))
