"""Every command and subcommand has help with an example, and `--help` runs for real."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from twinflow.cli import cli


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command under `group`, recursively, the group itself first."""
    yield path
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


ALL = list(commands(cli))


def test_the_walk_finds_the_commands_of_the_issue() -> None:
    names = {" ".join(path) for path in ALL}
    assert {
        "open",
        "decide",
        "note",
        "status",
        "history",
        "list",
        "demo",
        "workflows",
        "workflows list",
        "workflows show",
        "workflows validate",
    } <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "twinflow")
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="twinflow", catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: twinflow {' '.join(path)}".rstrip())
    assert "Example:" in result.stdout
    example = result.stdout.split("Example:", 1)[1].split("\nOptions:")[0]
    lines = [line.split() for line in example.replace("\\\n", " ").splitlines()]
    assert any(words[:1] == ["twinflow"] and set(path) <= set(words) for words in lines), (
        f"no example line runs `twinflow {' '.join(path)}`"
    )


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        timeout=60,
    )


def test_twinflow_help_runs_in_a_fresh_process(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("twinflow")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: twinflow [OPTIONS] COMMAND [ARGS]...")
    assert "Example:" in result.stdout
    assert list(tmp_path.iterdir()) == []  # help creates no register


def test_python_m_twinflow_is_the_same_command(tmp_path: Path) -> None:
    result = run_module("-m", "twinflow", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: twinflow [OPTIONS] COMMAND [ARGS]...")


def test_help_does_not_import_the_heavy_modules(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom twinflow.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='twinflow')\nexcept SystemExit:\n    pass\n"
        "heavy = {'eventsourcing', 'edtf', 'jsonschema', 'transitions', 'yaml'}\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = run_module("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
