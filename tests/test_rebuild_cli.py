"""`twinflow rebuild`: the read models dropped and built again from the log."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.conftest import Invoke
from twinflow.cli import cli


def test_rebuild_builds_the_read_models_again_from_the_log(run: Invoke) -> None:
    assert (
        run(
            "open",
            "coevorden-brest",
            "--workflow",
            "twinning",
            "--title",
            "Twinning",
            "--party",
            "Coevorden",
            "--party",
            "Brest",
            "--by",
            "council",
            "--on",
            "2000",
        ).exit_code
        == 0
    )
    assert (
        run(
            "decide",
            "coevorden-brest",
            "suspend",
            "--party",
            "Brest",
            "--by",
            "executive",
            "--on",
            "2022",
        ).exit_code
        == 0
    )
    before = json.loads(run("list", "--format", "json").stdout)

    result = run("rebuild")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "rebuilt the read models from 3 events\n"
    assert "rebuilding the read models" in result.stderr
    assert json.loads(run("list", "--format", "json").stdout) == before
    status = json.loads(
        run("status", "coevorden-brest", "--as-of", "2023", "--format", "json").stdout
    )
    assert (status["state"], status["since"]) == ("suspended", "2022")


def test_rebuild_of_a_missing_register_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    result = CliRunner().invoke(cli, ["--db", str(missing), "rebuild"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no register at ")
    assert result.stdout == ""
    assert not missing.exists()
