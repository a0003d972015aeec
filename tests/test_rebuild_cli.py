"""`twinflow rebuild`: the read models dropped and built again from the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def test_a_terminated_rebuild_rolls_back_and_leaves_no_scratch_files(tmp_path: Path) -> None:
    """`kill` (SIGTERM) mid-rebuild: exit code 143, the read models as they were, the
    worker processes stopped and the scratch folder beside the register removed."""
    db = tmp_path / "register.db"
    rows = ["case,action,decided_on,by,party,parties,workflow,title"]
    rows += [f"town-{n},open,2000,council,,A; B,twinning,Town {n}" for n in range(600)]
    for year in range(2001, 2011):
        rows += [f"town-{n},reaffirm,{year},council,A,,," for n in range(600)]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    runner = CliRunner()
    imported = runner.invoke(cli, ["--db", str(db), "import", str(tmp_path / "rows.csv")])
    assert imported.exit_code == 0, imported.output
    listed = runner.invoke(cli, ["--db", str(db), "list", "--format", "json"]).stdout
    env = dict(os.environ, TWINFLOW_WORKERS="3", TWINFLOW_ACTOR="clerk-a")
    command = [sys.executable, "-c", "from twinflow.cli import main; main()", "--db", str(db)]
    rebuild = subprocess.Popen(
        [*command, "rebuild"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    # its three scratch files made (a kill within the microseconds between the folder's
    # creation and its cleanup being registered would leave the folder: not this test's case)
    while len(list(tmp_path.glob(".twinflow-rebuild-*/part-*.db"))) < 3:
        assert rebuild.poll() is None, "the rebuild ended before its scratch files were seen"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(0.05)
    assert rebuild.poll() is None, "the rebuild ended before it could be stopped"
    rebuild.send_signal(signal.SIGTERM)
    _, stderr = rebuild.communicate(timeout=60)
    assert rebuild.returncode == 143, stderr
    assert list(tmp_path.glob(".twinflow-rebuild-*")) == []
    assert runner.invoke(cli, ["--db", str(db), "list", "--format", "json"]).stdout == listed
