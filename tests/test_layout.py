"""The package layout's rules, checked: imports run one way (import-linter's layers contract in pyproject.toml)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter not installed (pip install -e '.[dev]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_contract_is_kept() -> None:
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_import_contract_fails_on_a_stage_importing_a_command(tmp_path: Path) -> None:
    """A deliberate violation (a stage importing a command module) must break the contract."""
    shutil.copytree(REPO / "pointpillars_trt", tmp_path / "pointpillars_trt", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "plugins", tmp_path / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    anchors = tmp_path / "pointpillars_trt" / "stages" / "anchors.py"
    anchors.write_text(anchors.read_text() + "\nfrom pointpillars_trt.cli import infer  # deliberate violation\n")
    r = _lint(tmp_path)
    assert r.returncode != 0
    assert "pointpillars_trt.stages is not allowed to import pointpillars_trt.cli" in r.stdout
