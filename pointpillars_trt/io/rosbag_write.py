"""Scans out as a ROS bag of sensor_msgs/PointCloud2 (x, y, z, intensity float32), written with `rosbags`: a ROS 1
.bag, or a rosbag2 folder with MCAP storage. For trying `infer BAG` without a robot (`make-sample --bag`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.pointcloud2 import POINTCLOUD2
from pointpillars_trt.io.rosbag import require_rosbags

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def pointcloud2(typestore: Any, points: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """A PointCloud2 of the typestore's ROS version holding N x 4 float32 points (x, y, z, intensity)."""
    t = typestore.types
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    header = t["std_msgs/msg/Header"]
    extra = {"seq": 0} if "seq" in header.__dataclass_fields__ else {}
    data = np.ascontiguousarray(points[:, :4], dtype="<f4")
    fields = [t["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=FLOAT32, count=1)
              for i, n in enumerate(("x", "y", "z", "intensity"))]
    return t[POINTCLOUD2](header=header(stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                        frame_id=frame_id, **extra),
                          height=1, width=len(data), fields=fields, is_bigendian=False, point_step=16,
                          row_step=16 * len(data), data=data.view(np.uint8).reshape(-1), is_dense=True)


def write_bag(path: str | os.PathLike, clouds: Iterable[tuple[int, np.ndarray]], *, topic: str = "/points",
              frame_id: str = "lidar") -> int:
    """Write (stamp ns, points) as PointCloud2 messages; `path` ending in .bag: ROS 1, else a rosbag2 folder (MCAP).
    Returns the message count; UserError when the path exists."""
    require_rosbags()
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if path.exists():
        raise UserError(f"{path} already exists; a bag is never overwritten, name another")
    ros1 = path.suffix.lower() == ".bag"
    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
    if ros1:
        from rosbags.rosbag1 import Writer

        writer = Writer(path)
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    n = 0
    with writer:
        conn = writer.add_connection(topic, POINTCLOUD2, typestore=store)
        for stamp, points in clouds:
            writer.write(conn, int(stamp), serialize(pointcloud2(store, points, stamp, frame_id), POINTCLOUD2))
            n += 1
    return n
