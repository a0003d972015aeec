"""The `twinflow` group: loads each command from its module only when it is used, and turns
twinflow's errors into one `Error: ...` line. Kept apart from cli_base.py, which the commands
share, so that `twinflow --help` imports nothing the list of commands does not need."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from twinflow.errors import TwinflowError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


class TwinflowGroup(click.Group):
    """Turns twinflow's errors into one `Error: ...` line and its exit code, and loads each
    command from its module only when it is used (click's lazily loaded subcommands).

    `lazy` maps a command's name to its module, the attribute holding it, and the first
    paragraph of its help: the list of commands in `--help` and in shell completion shows
    that summary through a stand-in, so listing them imports none of their modules."""

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self._listing = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TwinflowError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return self.stand_in(cmd_name)
        module, attribute, _ = self.lazy[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), f"{module}.{attribute}"
        self.add_command(command, cmd_name)
        return command

    def stand_in(self, cmd_name: str) -> click.Command:
        """A command that only carries the summary of a lazily loaded one, for listing."""
        return click.Command(cmd_name, help=self.lazy[cmd_name][2])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as error:
            # click suggests close names among the loaded commands only: offer all of them
            raise click.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._stand_ins():
            super().format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        with self._stand_ins():
            return super().shell_complete(ctx, incomplete)

    @contextmanager
    def _stand_ins(self) -> Iterator[None]:
        """While commands are only listed, unloaded ones are stand-ins with their summary."""
        self._listing = True
        try:
            yield
        finally:
            self._listing = False
