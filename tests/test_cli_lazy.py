"""Commands load lazily: `twinflow --help` lists every command with the summary kept in
cli.COMMANDS without importing their modules, and that summary is each command's own; every
command, its help, completion, `python -m twinflow` and click's suggestions still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from twinflow.cli import COMMANDS, cli
from twinflow.cli_group import TwinflowGroup

SCRIPT = Path(sys.executable).with_name("twinflow")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error", **env},
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_summary_is_the_commands_own(name: str) -> None:
    module, attribute, _ = COMMANDS[name]
    command = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert isinstance(command, click.Command)
    assert command.name == name
    stand_in = TwinflowGroup(lazy=COMMANDS).stand_in(name)
    for limit in range(10, 200):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), limit
    assert (stand_in.hidden, stand_in.deprecated) == (command.hidden, command.deprecated)


def test_the_table_holds_every_command_and_only_those() -> None:
    context = click.Context(cli)
    loaded = {name: cli.get_command(context, name) for name in COMMANDS}
    assert all(isinstance(command, click.Command) for command in loaded.values())
    assert sorted(cli.list_commands(context)) == sorted(COMMANDS)
    assert set(cli.commands) == set(COMMANDS)  # nothing registered beside the table


def test_help_lists_the_commands_as_loaded_ones_would_without_loading_them() -> None:
    code = """if True:
        import json, sys
        import click
        from twinflow.cli import cli

        def helps():
            return [
                cli.get_help(click.Context(cli, info_name="twinflow", terminal_width=width))
                for width in (50, 80, 120, 200)
            ]

        lazy = helps()
        loaded = sorted(m for m in sys.modules if m.startswith("twinflow."))
        for name in cli.list_commands(click.Context(cli)):
            cli.get_command(click.Context(cli), name)
        print(json.dumps([lazy == helps(), loaded]))
    """
    result = _python(code)
    assert result.returncode == 0, result.stderr
    same, loaded = json.loads(result.stdout)
    assert same
    assert loaded == ["twinflow.cli", "twinflow.cli_group", "twinflow.errors"]


def test_status_loads_only_its_own_command_module(tmp_path: Path) -> None:
    code = """if True:
        import json, sys
        from twinflow.cli import cli
        try:
            cli(["--db", sys.argv[1], "status", "a-b"], prog_name="twinflow")
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("twinflow.cli"))))
    """
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "twinflow.cli",
        "twinflow.cli_base",
        "twinflow.cli_group",
        "twinflow.cli_read",
    ]


@pytest.mark.parametrize(("typed", "meant"), [("stauts", "status"), ("imprt", "import")])
def test_a_mistyped_command_gets_clicks_suggestion(tmp_path: Path, typed: str, meant: str) -> None:
    result = subprocess.run(
        [str(SCRIPT), typed], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.endswith(f"Error: No such command '{typed}'. Did you mean '{meant}'?\n")
    assert list(tmp_path.iterdir()) == []


def test_a_command_without_a_near_name_is_refused_plainly(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "zzz"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.endswith("Error: No such command 'zzz'.\n")


def _complete(words: str, shell: str = "zsh") -> list[str]:
    result = subprocess.run(
        [str(SCRIPT)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_TWINFLOW_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        },
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_completion_lists_the_commands_with_their_summaries() -> None:
    from twinflow.cli_read import status

    assert _complete("twinflow st") == ["plain", "status", status.get_short_help_str()]


def test_completion_reaches_into_a_lazily_loaded_command() -> None:
    lines = _complete("twinflow status --for", shell="bash")
    assert lines == ["plain,--format"]
    assert _complete("twinflow workflows v", shell="bash") == ["plain,validate"]


def test_python_m_twinflow_runs_a_lazily_loaded_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twinflow", "status", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: twinflow status [OPTIONS] CASE")
