"""Open3D: headless render of a real KITTI frame with its ground truth, and the guards around Open3D."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pointpillars_trt.errors import UserError
from pointpillars_trt.viz import open3d_view

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "kitti" / "training"
HEADER = 48

# run in a child process: if the renderer aborts (it does not raise), only the child dies
_RENDER = """
import argparse, sys
from pointpillars_trt.cli import view as cli
ap = argparse.ArgumentParser(); cli.add_parser(ap.add_subparsers())
args = ap.parse_args(["view", *sys.argv[1:]])
sys.exit(args.func(args))
"""


def _open3d_skip_reason() -> str | None:
    try:
        import open3d  # noqa: F401
    except (ImportError, OSError) as e:
        return f"open3d not importable ({e}); {open3d_view.INSTALL_HINT}"
    if sys.platform.startswith("linux") and not open3d_view.vulkan_driver_files():
        return "no Vulkan driver (/usr/share/vulkan/icd.d/*.json): apt-get install libvulkan1 mesa-vulkan-drivers"
    return None


def test_offscreen_render_of_kitti_frame_with_ground_truth(tmp_path: Path) -> None:
    reason = _open3d_skip_reason()
    if reason:
        pytest.skip(reason)
    if not TRAIN.is_dir():
        pytest.skip(f"shared KITTI training frame not found at {TRAIN}")
    out = tmp_path / "view.png"
    argv = [str(TRAIN / "velodyne" / "000134.bin"), "--labels", str(TRAIN / "label_2" / "000134.txt"),
            "--calib", str(TRAIN / "calib" / "000134.txt"), "--save", str(out)]
    proc = subprocess.run([sys.executable, "-c", _RENDER, *argv], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape == (720 + HEADER, 1280, 3)
    scene = img[HEADER:]
    lit = scene.max(axis=2) > 30
    assert 0.01 < lit.mean() < 0.6, f"{lit.mean():.3f} of the view is lit"
    white = (scene.min(axis=2) > 200)  # ground-truth boxes (points are bluish, never white)
    bluish = (scene[..., 2] > scene[..., 0] + 40) & lit
    assert white.sum() > 300 and bluish.sum() > 3000


def test_missing_open3d_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open3d", None)  # makes `import open3d` raise ImportError
    with pytest.raises(UserError, match="pip install open3d"):
        open3d_view.import_open3d()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Vulkan guard applies on Linux only")
def test_no_vulkan_driver_is_a_user_error_not_an_abort(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VK_DRIVER_FILES", str(tmp_path / "none.json"))
    assert open3d_view.vulkan_driver_files() == []
    with pytest.raises(UserError, match="mesa-vulkan-drivers"):
        open3d_view.check_offscreen_support()
    # save_png checks before creating the renderer (with open3d installed this is the Vulkan message)
    with pytest.raises(UserError, match="Vulkan|Open3D"):
        open3d_view.save_png(tmp_path / "x.png", np.zeros((10, 4), np.float32))
    assert not (tmp_path / "x.png").exists()
