"""Test bags written with `rosbags` from the shared KITTI scans, in the layouts real drivers publish (the test's own
encoding: structured NumPy records, independent of pointpillars_trt.io.rosbag_write)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (name, NumPy type, offset), point_step: field tables as the drivers publish them
VELODYNE = ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8), ("intensity", "f4", 12), ("ring", "u2", 16),
             ("time", "f4", 18)], 22)
OUSTER = ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8), ("intensity", "f4", 16), ("t", "u4", 20),
           ("reflectivity", "u2", 24), ("ring", "u2", 26), ("ambient", "u2", 28), ("range", "u4", 32)], 48)
DATATYPE = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 8}
STAMP0 = 1_700_000_000_123_456_789
CONTAINERS = ("db3", "mcap", "ros1")


def records(points: np.ndarray, layout, *, big: bool = False) -> np.ndarray:
    """The points as the layout's structured records (x, y, z, intensity from the scan; the other fields filled)."""
    fields, step = layout
    order = ">" if big else "<"
    dt = np.dtype({"names": [f[0] for f in fields], "formats": [order + f[1] for f in fields],
                   "offsets": [f[2] for f in fields], "itemsize": step})
    rec = np.zeros(len(points), dt)
    for i, name in enumerate(("x", "y", "z", "intensity")):
        if name in dt.names:
            rec[name] = points[:, i]
    for name in dt.names:
        if name not in ("x", "y", "z", "intensity"):
            rec[name] = np.arange(len(points)) % 64
    return rec


def typestore(ros1: bool):
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)


def message(store, rec: np.ndarray, layout, stamp: int, frame_id: str = "velodyne", *, height: int = 1,
            row_pad: int = 0, big: bool = False, fields=None):
    """A PointCloud2 of the store's ROS version holding `rec` (height rows, each padded by row_pad bytes)."""
    t = store.types
    table, step = layout
    width = len(rec) // height
    rows = rec.tobytes()
    if row_pad:
        rows = b"".join(rows[r * width * step:(r + 1) * width * step] + b"\xee" * row_pad for r in range(height))
    header = t["std_msgs/msg/Header"]
    extra = {"seq": 7} if "seq" in header.__dataclass_fields__ else {}
    pf = t["sensor_msgs/msg/PointField"]
    return t["sensor_msgs/msg/PointCloud2"](
        header=header(stamp=t["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                      frame_id=frame_id, **extra),
        height=height, width=width,
        fields=[pf(name=n, offset=o, datatype=DATATYPE[f], count=1) for n, f, o in (table if fields is None else fields)],
        is_bigendian=big, point_step=step, row_step=width * step + row_pad,
        data=np.frombuffer(rows, np.uint8), is_dense=False)


def write(path: Path, container: str, topics: dict[str, list]) -> Path:
    """A bag of {topic: [(log time ns, message object)]}; container db3 / mcap (rosbag2 folders) or ros1 (.bag)."""
    ros1 = container == "ros1"
    store = typestore(ros1)
    if ros1:
        from rosbags.rosbag1 import Writer

        path, writer = path.with_suffix(".bag"), None
        writer = Writer(path)
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.SQLITE3 if container == "db3" else StoragePlugin.MCAP
        writer = Writer(path, version=9, storage_plugin=plugin)
    serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
    with writer:
        for topic, msgs in topics.items():
            msgtype = msgs[0][1].__msgtype__
            conn = writer.add_connection(topic, msgtype, typestore=store)
            for stamp, msg in msgs:
                writer.write(conn, stamp, serialize(msg, msgtype))
    return path


def kitti_bag(path: Path, container: str, scans: list[Path], layout=VELODYNE, frame_id: str = "velodyne") -> Path:
    """One PointCloud2 per scan on /points, 10 Hz from STAMP0."""
    store = typestore(container == "ros1")
    msgs = []
    for i, scan in enumerate(scans):
        pts = np.fromfile(scan, np.float32).reshape(-1, 4)
        stamp = STAMP0 + i * 100_000_000
        msgs.append((stamp, message(store, records(pts, layout), layout, stamp, frame_id)))
    return write(path, container, {"/points": msgs})


def storage_file(bag: Path) -> Path:
    """The file holding a bag's messages (the .bag itself, or a rosbag2 folder's .db3 / .mcap)."""
    return bag if bag.is_file() else next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


def cut(bag: Path, fraction: float) -> Path:
    """Cut the bag's storage file to `fraction` of its bytes, as a recorder killed mid-write leaves it."""
    f = storage_file(bag)
    data = f.read_bytes()
    f.write_bytes(data[:int(len(data) * fraction)])
    return bag
