"""What every `twinflow` command shares: settings from the global options, date and
timestamp parameters, and the output and decision options (the group that runs them, and
turns twinflow's errors into one line, is in cli_group.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from twinflow.errors import InvalidInput

if TYPE_CHECKING:
    from twinflow.application import Register

F = TypeVar("F", bound=Callable[..., Any])
DATE = "DATE"


class DateType(click.ParamType[str, Any]):
    """An EDTF date (2022, 2024-03, 2024-03-14, 2022?, 2022-03~), checked at parse time."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from twinflow.dates import parse_date

        try:
            return parse_date(str(value), "date").text
        except InvalidInput as error:
            self.fail(str(error).removeprefix("date "), param, ctx)


class PathType(click.Path):
    """click.Path giving a pathlib.Path, without importing pathlib (and urllib, which it
    imports) for `--help`: worth ~9 ms of a cold start."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import os
        from pathlib import Path

        return Path(os.fsdecode(super().convert(value, param, ctx)))


class TimestampType(click.ParamType[str, Any]):
    """ISO 8601 with a zone, or a plain date meaning the end of that day UTC."""

    name = "timestamp"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from twinflow.dates import parse_timestamp

        try:
            parse_timestamp(str(value), "timestamp")
        except InvalidInput as error:
            self.fail(str(error).removeprefix("timestamp "), param, ctx)
        return str(value)


@dataclass
class Settings:
    db: str | None
    actor: str | None
    workflows: str | None
    lang: str

    def register(self, *, create: bool = False) -> Register:
        from twinflow.application import Register

        register = Register.at(self.db, self.workflows, create=create)
        context = click.get_current_context(silent=True)
        if context is not None:  # the command's connections close when it ends
            context.call_on_close(register.close)
        return register


pass_settings = click.make_pass_decorator(Settings)


def check_output_path(path: Any, option: str = "-o") -> None:
    """Refuse an output file whose folder is missing or not writable, before any work."""
    import os
    from pathlib import Path

    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInput(
            f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist; "
            f"create it first, or give {option} a path in an existing folder"
        )
    if not os.access(folder, os.W_OK):
        raise InvalidInput(
            f"cannot write {str(path)!r}: the folder {str(folder)!r} is not writable; "
            f"give {option} a path in a folder you can write to"
        )


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output format.",
    )


def decision_options(func: F) -> F:
    """The fields of a formal decision, shared by `decide` and `open`."""
    options = [
        click.option(
            "--body-name", help="The deciding body's own name, e.g. 'college van B&W Coevorden'."
        ),
        click.option("--reason", help="Why it was decided."),
        click.option("--ref", "reference", help="The decision's reference number."),
        click.option(
            "--source",
            "sources",
            multiple=True,
            help="A URL or document id the decision is known from (repeatable).",
        ),
        click.option(
            "--effective",
            type=DateType(),
            metavar=DATE,
            help="When it took effect (default: the --on date).",
        ),
        click.option(
            "--on",
            "on",
            type=DateType(),
            required=True,
            metavar=DATE,
            help="When it was decided: 2024, 2024-03, 2024-03-14, 2022?, 2022-03~, 2022% "
            "(uncertain and approximate), 202X, 2022-XX (unspecified digits).",
        ),
    ]
    for option in options:
        func = option(func)
    return func
