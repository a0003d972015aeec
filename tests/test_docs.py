"""The README tells the truth: its test command is CI's, its command table lists every
command, and its shell session, replayed, prints what it shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_help import ALL

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00")


def section(title: str) -> str:
    """The text of a README section, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def console_blocks(text: str) -> list[str]:
    return re.findall(r"```console\n(.*?)```", text, flags=re.S)


def test_the_readme_test_command_is_exactly_the_one_ci_runs() -> None:
    match = re.search(r"^test_command='(.+)'$", CI, flags=re.M)
    assert match, ".ci/run defines test_command"
    command = match.group(1)
    assert 'bash -c "$test_command"' in CI
    blocks = [b.strip() for b in console_blocks(section("Two commands"))]
    assert command in blocks, "the README's test command differs from CI's"
    assert command.endswith("python -m pytest")


def test_the_readme_demo_command_installs_and_runs_the_demo() -> None:
    blocks = [b.strip() for b in console_blocks(section("Two commands"))]
    assert any(
        b.startswith("python3 -m venv .venv") and b.endswith("twinflow demo") for b in blocks
    )


def table_rows() -> list[list[str]]:
    """The command column of the README's command table, as words."""
    rows = []
    for line in section("Commands").splitlines():
        cell = re.match(r"^\| `twinflow ([^`]+)` \|", line)
        if cell:
            rows.append(cell.group(1).replace("\\|", " | ").replace("|", " ").split())
    return rows


@pytest.mark.parametrize("path", [p for p in ALL if p], ids=" ".join)
def test_every_command_appears_in_the_readme_command_table(path: tuple[str, ...]) -> None:
    rows = table_rows()
    assert rows, "the README has a command table"
    assert any(row[0] == path[0] and set(path[1:]) <= set(row) for row in rows), (
        f"`twinflow {' '.join(path)}` is missing from the README's command table"
    )


def session() -> list[tuple[str, list[str], int]]:
    """The README's shell session: each command, the lines it shows and its exit code."""
    (block,) = console_blocks(section("A session"))
    steps: list[tuple[str, list[str], int]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], [], 0))
        elif re.fullmatch(r"\(exit (\d+)\)", line):
            command, shown, _ = steps[-1]
            steps[-1] = (command, shown, int(line[6:-1]))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_readme_session_replays_as_shown(tmp_path: Path) -> None:
    steps = session()
    assert [shlex.split(c)[1] for c, _, _ in steps][:3] == ["open", "note", "decide"]
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINFLOW_")}
    env.update(TWINFLOW_ACTOR="griffie-coevorden", PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    for command, shown, code in steps:
        assert shlex.split(command)[0] == "twinflow"
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        printed = (done.stdout + done.stderr).splitlines()
        assert "Traceback" not in done.stderr
        assert (done.returncode, [STAMP.sub("<time>", x) for x in printed]) == (
            code,
            [STAMP.sub("<time>", x) for x in shown],
        ), command
