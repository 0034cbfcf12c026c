"""A clone without ../shared: the tests that read the real scans or the checkpoint skip, saying what they need,
and the others run (here ../shared exists, so the suite itself skips nothing).
See conftest.pytest_collection_modifyitems."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from conftest import REPO, SHARED


def test_a_clone_without_shared_skips_saying_why_and_runs_the_rest(tmp_path):
    assert SHARED.is_dir()  # on every machine of the project and in CI
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", clone)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_points.py",
                        "tests/test_launch.py"], cwd=clone, env=dict(os.environ, PYTHONPATH=str(REPO)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    skipped, passed = (int(re.search(rf"(\d+) {w}", summary).group(1)) for w in ("skipped", "passed"))
    assert skipped >= 7 and passed >= 1 and "error" not in summary, r.stdout
    assert f"needs {tmp_path / 'shared'}: the real KITTI scans" in r.stdout, r.stdout
