"""A Foxglove-ready MCAP of detections: per scan one foxglove.SceneUpdate on /detections (a cube per box in the
scan's frame_id at its stamp, coloured by class, with the class and score as text) and the points as
foxglove.PointCloud on /points, protobuf-encoded (foxglove-schemas-protobuf, written with mcap-protobuf-support)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.rosbag import ROS_HINT
from pointpillars_trt.viz.style import class_color

DETECTIONS_TOPIC, POINTS_TOPIC = "/detections", "/points"
BOX_ALPHA = 0.35  # see-through cubes: the points inside a box stay visible


def require_foxglove() -> Any:
    """The Foxglove protobuf schema modules (and the MCAP protobuf writer), or a UserError naming the extra."""
    try:
        import foxglove_schemas_protobuf as fs  # noqa: F401
        from foxglove_schemas_protobuf import (CubePrimitive_pb2, PackedElementField_pb2, PointCloud_pb2,
                                               SceneEntity_pb2, SceneUpdate_pb2, TextPrimitive_pb2)
        from mcap_protobuf.writer import Writer  # noqa: F401
    except ImportError:
        raise UserError(f"writing a Foxglove MCAP (--mcap) needs foxglove-schemas-protobuf and mcap-protobuf-support: "
                        f"{ROS_HINT}") from None
    return CubePrimitive_pb2, PackedElementField_pb2, PointCloud_pb2, SceneEntity_pb2, SceneUpdate_pb2, TextPrimitive_pb2


class FoxgloveMcapWriter:
    """Write scans and their detections to an MCAP that Foxglove opens as a drive with boxes."""

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str], *, points: bool = True) -> None:
        self._pb = require_foxglove()
        from mcap_protobuf.writer import Writer

        self.path, self._names, self._points = Path(path), tuple(class_names), points
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file)
        self.count = 0

    def write(self, stamp_ns: int, frame_id: str, points: np.ndarray | None, dets: Detections) -> None:
        """One scan: its SceneUpdate (always) and its PointCloud (when points are kept and given)."""
        cube_pb, field_pb, cloud_pb, entity_pb, update_pb, text_pb = self._pb
        entity = entity_pb.SceneEntity(frame_id=frame_id, id="detections")
        _stamp(entity.timestamp, stamp_ns)
        for box, score, label in zip(dets.boxes, dets.scores, dets.labels):
            name = self._names[int(label) - 1]
            rgb = [c / 255.0 for c in class_color(name, self._names)]
            cube = entity.cubes.add()
            _pose(cube.pose, box[:3], float(box[6]))
            cube.size.x, cube.size.y, cube.size.z = (float(v) for v in box[3:6])
            cube.color.r, cube.color.g, cube.color.b, cube.color.a = *rgb, BOX_ALPHA
            text = entity.texts.add(billboard=True, font_size=14.0, scale_invariant=True, text=f"{name} {score:.2f}")
            _pose(text.pose, (box[0], box[1], box[2] + box[5] / 2 + 0.3), 0.0)
            text.color.r, text.color.g, text.color.b, text.color.a = *rgb, 1.0
        update = update_pb.SceneUpdate()
        update.entities.append(entity)
        self._writer.write_message(DETECTIONS_TOPIC, update, log_time=stamp_ns, publish_time=stamp_ns)
        if self._points and points is not None:
            pts = np.ascontiguousarray(points[:, :4], dtype="<f4")
            cloud = cloud_pb.PointCloud(frame_id=frame_id, point_stride=16, data=pts.tobytes())
            _stamp(cloud.timestamp, stamp_ns)
            cloud.pose.orientation.w = 1.0
            for i, n in enumerate(("x", "y", "z", "intensity")):
                cloud.fields.add(name=n, offset=4 * i, type=field_pb.PackedElementField.FLOAT32)
            self._writer.write_message(POINTS_TOPIC, cloud, log_time=stamp_ns, publish_time=stamp_ns)
        self.count += 1

    def close(self) -> None:
        """Write the MCAP's index and footer."""
        if self._file.closed:
            return
        self._writer.finish()
        self._file.close()


def _stamp(ts: Any, ns: int) -> None:
    ts.seconds, ts.nanos = divmod(int(ns), 1_000_000_000)


def _pose(pose: Any, xyz: Sequence[float], yaw: float) -> None:
    """Position and a rotation of `yaw` about z (lidar frame: boxes lie flat)."""
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in xyz)
    pose.orientation.z, pose.orientation.w = float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
