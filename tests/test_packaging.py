"""The wheel carries the bundled workflows, and an installed twinflow finds them without the
source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("twinflow-*.whl")
    return built


def test_the_wheel_ships_the_workflows_and_their_schema(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "twinflow/workflows/twinning.yaml" in names
    assert "twinflow/workflows/workflow.schema.json" in names
    shipped = (ROOT / "workflows" / "twinning.yaml").read_bytes()
    assert zipfile.ZipFile(wheel).read("twinflow/workflows/twinning.yaml") == shipped


def test_the_wheel_declares_the_console_script(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "twinflow = twinflow.cli:main" in archive.read(entry_points).decode()


def test_an_installed_twinflow_finds_its_bundled_workflow(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINFLOW_")}
    env["PYTHONPATH"] = str(unpacked)  # ahead of the editable install of the source tree
    code = (
        "import sys, twinflow\n"
        "print(twinflow.__file__, file=sys.stderr)\n"
        "from twinflow.cli import main\n"
        "sys.argv = ['twinflow', 'workflows', 'list', '--format', 'json']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == str(unpacked / "twinflow" / "__init__.py")
    listed = {w["name"]: w for w in json.loads(done.stdout)}
    assert listed["twinning"]["file"] == str(unpacked / "twinflow" / "workflows" / "twinning.yaml")
    assert listed["twinning"]["version"] == 1
    assert list(elsewhere.iterdir()) == []
