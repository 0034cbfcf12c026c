"""Writing synthetic frames to disk in KITTI's layout (velodyne, label_2, calib, ImageSets/val.txt)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.io.kitti import write_labels
from pointpillars_trt.io.points import write_bin
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.scene import Scene, generate_scene


def frame_seed(seed: int, index: int) -> int:
    """Seed of frame `index` of a dataset made with `seed` (independent streams per frame)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def write_frame(root: Path, frame_id: str, scene: Scene) -> None:
    """Write one scene's velodyne .bin, label_2 and calib files under root/training."""
    tr = Path(root) / "training"
    for sub in ("velodyne", "label_2", "calib"):
        (tr / sub).mkdir(parents=True, exist_ok=True)
    write_bin(tr / "velodyne" / f"{frame_id}.bin", scene.points)
    write_labels(tr / "label_2" / f"{frame_id}.txt", scene.kitti_objects())
    scene.calib.write(tr / "calib" / f"{frame_id}.txt")


def write_dataset(root: str | Path, n_frames: int, seed: int = 0, progress: bool = True,
                  cfg: PointPillarsConfig | None = None) -> list[str]:
    """Generate n_frames frames in KITTI's layout under root (ImageSets/val.txt lists them); returns the ids."""

    root = Path(root)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    cfg = cfg or PointPillarsConfig()
    ids = [f"{i:06d}" for i in range(n_frames)]
    for i, fid in enumerate(log.progress(ids, desc="sample frames", unit="frame", disable=not progress)):
        write_frame(root, fid, generate_scene(frame_seed(seed, i), cfg))
    (root / "ImageSets" / "val.txt").write_text("".join(f"{fid}\n" for fid in ids))
    return ids
