"""Draw one scan of a Foxglove MCAP written by `infer --mcap`, from the file alone: the SceneUpdate's cubes (class from
their text) over the PointCloud, as a bird's-eye PNG (viz/bev.py's look). It checks what Foxglove would show
without a display.

    python bench/mcap_picture.py drive_foxglove.mcap docs/rosbag_foxglove_bev.png [--scan 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.io.detections import Detections  # noqa: E402
from pointpillars_trt.model.config import PointPillarsConfig  # noqa: E402
from pointpillars_trt.viz.bev import render_bev  # noqa: E402


def read_scan(path: Path, k: int) -> tuple[np.ndarray, Detections, str]:
    """Points, boxes and frame_id of the k-th scan of the MCAP."""
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    names = PointPillarsConfig().class_names
    with open(path, "rb") as f:
        msgs = list(make_reader(f).iter_messages(topics=["/detections", "/points"]))
    scene = SceneUpdate.FromString([m.data for _, c, m in msgs if c.topic == "/detections"][k])
    cloud = PointCloud.FromString([m.data for _, c, m in msgs if c.topic == "/points"][k])
    (entity,) = scene.entities
    rows = []
    for cube, text in zip(entity.cubes, entity.texts):
        name, score = text.text.rsplit(" ", 1)
        p, q, s = cube.pose.position, cube.pose.orientation, cube.size
        rows.append([p.x, p.y, p.z, s.x, s.y, s.z, 2 * np.arctan2(q.z, q.w), float(score), names.index(name) + 1])
    dets = Detections.from_array(np.array(rows, np.float32)) if rows else Detections.empty()
    points = np.frombuffer(cloud.data, "<f4").reshape(-1, cloud.point_stride // 4)
    return points, dets, entity.frame_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mcap", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--scan", type=int, default=0)
    a = ap.parse_args()
    points, dets, frame = read_scan(a.mcap, a.scan)
    render_bev(points, a.png, dets, title=f"{a.mcap.name} #{a.scan} ({frame}): SceneUpdate cubes, PointCloud")
    print(f"wrote {a.png}: {len(points)} points, {len(dets)} cubes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
