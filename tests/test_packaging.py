"""What a plain `pip install` ships: a wheel built from this tree holds the default model once (the repository
keeps one copy, data/models, linked into the package as pointpillars_trt/model/weights) and the YAML configs."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_ships_the_default_model_once(tmp_path):
    src = tmp_path / "src"  # a copy, so that the build's own folders (build/, *.egg-info) stay out of the checkout
    for name in ("pointpillars_trt", "plugins", "data"):
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--wheel-dir", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("pointpillars_trt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    models = sorted((REPO / "data/models").glob("*.pth"))
    assert sorted(n for n in names if n.endswith(".pth")) == [f"pointpillars_trt/model/weights/{m.name}" for m in models]
    for m in models:
        assert zipfile.ZipFile(wheel).getinfo(f"pointpillars_trt/model/weights/{m.name}").file_size == m.stat().st_size
    assert "pointpillars_trt/model/configs/pointpillar.yaml" in names
    assert "pointpillars_trt/plugins/pillar_scatter.py" in names


def test_repository_keeps_the_default_model_once():
    tracked = subprocess.run(["git", "ls-files", "*.pth", "*MODEL_CARD.md"], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert tracked and all(t.startswith("data/models/") for t in tracked), tracked
    assert (REPO / "pointpillars_trt/model/weights").resolve() == (REPO / "data/models").resolve()
