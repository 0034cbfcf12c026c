"""ROS bags of sensor_msgs/PointCloud2 in: a rosbag2 folder (MCAP or sqlite3 storage), a bare .mcap or .db3 file, or
a ROS 1 .bag, read with `rosbags` (pure Python, no ROS install).

A bag yields BagScans in the topic's order: (index, stamp, frame_id) parsed on the spot, the points decoded when
asked (`read_points()`), so that Detector.stream decodes them on its reading threads ahead of the pipeline. A bag
that rosbags refuses because its recording was cut off (an MCAP without its footer, a ROS 1 bag without its index,
a .db3 cut mid-page) is read record by record up to the cut (io/bag_recovery.py); `Bag.problem` then says where
it ended, so the caller can report the messages it could not read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.pointcloud2 import POINTCLOUD2, Cloud, CloudStats, decode, parse_pointcloud2

BAG_SUFFIXES = (".bag", ".mcap", ".db3")
ROS_HINT = 'pip install "pointpillars_trt[ros]" (rosbags, mcap, foxglove-schemas-protobuf)'


@dataclass(frozen=True)
class TopicInfo:
    """A topic's message type, its message count (None where the bag does not say), and whether it is ROS 1."""

    msgtype: str
    count: int | None
    ros1: bool


class Source(Protocol):
    """What a bag reader gives: its topics and a topic's (log time ns, serialized message) in order."""

    how: str

    def topics(self) -> dict[str, TopicInfo]: ...

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


@dataclass
class BagScan:
    """One PointCloud2 message: its index in the topic, header stamp (ns) and frame_id; points on read_points()."""

    index: int
    topic: str
    log_time: int
    stamp: int
    frame_id: str
    cloud: Cloud | None
    error: UserError | None = None
    intensity_field: str | None = None
    stats: CloudStats | None = field(default=None, repr=False)
    points: np.ndarray | None = field(default=None, repr=False)

    def read_points(self) -> np.ndarray:
        """N x 4 float32 (x, y, z, intensity), NaN rows dropped (counted in .stats), kept as .points; UserError naming
        the message for a cloud that cannot be decoded (no x/y/z, empty, a layout its data does not fill)."""
        if self.points is not None:
            return self.points
        if self.cloud is None:
            raise self.error or UserError(f"{self.name}: no point cloud")
        try:
            self.points, self.stats = decode(self.cloud, self.intensity_field)
        except UserError as e:
            raise UserError(f"{self.name}: {e}") from None
        return self.points

    def __iter__(self) -> Iterator[Any]:
        """`stamp, frame_id, points = scan`: the header stamp (ns), the frame and the decoded points."""
        return iter((self.stamp, self.frame_id, self.read_points()))

    @property
    def name(self) -> str:
        return f"{self.topic} message {self.index}"


def is_bag(path: str | os.PathLike) -> bool:
    """A ROS bag by its name: .bag / .mcap / .db3, or a folder with a rosbag2 metadata.yaml or storage files."""
    p = Path(path)
    if p.is_dir():
        return (p / "metadata.yaml").is_file() or bool(_storage_files(p))
    return p.suffix.lower() in BAG_SUFFIXES


class Bag:
    """An open bag: its topics, the PointCloud2 topic to read, its scans; `problem` after a cut-off read."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._source = open_source(self.path)
        self.topic_infos = self._source.topics()
        self.problem: str | None = None
        self._listed = _metadata_counts(self.path) if self.path.is_dir() else {}

    @property
    def how(self) -> str:
        """How the bag is read (its container, and whether record by record past a cut)."""
        return self._source.how

    def pointcloud_topics(self) -> dict[str, TopicInfo]:
        return {t: i for t, i in self.topic_infos.items() if i.msgtype == POINTCLOUD2}

    def resolve_topic(self, topic: str | None = None) -> str:
        """The topic to read: `topic`, else the bag's only PointCloud2 topic; UserError listing the PointCloud2 topics."""
        clouds = self.pointcloud_topics()
        listed = ", ".join(f"{t} ({i.count if i.count is not None else '?'} messages)" for t, i in clouds.items()) or "none"
        cut = getattr(self._source, "cut", None)
        if not self.topic_infos and cut:
            raise UserError(f"{self.path} is cut off before its first readable message ({cut})")
        if topic is None:
            if len(clouds) == 1:
                return next(iter(clouds))
            why = "has no PointCloud2 topic" if not clouds else "has several PointCloud2 topics; pick one with --topic"
            raise UserError(f"{self.path} {why} (PointCloud2 topics: {listed})")
        if topic not in self.topic_infos:
            raise UserError(f"{self.path} has no topic {topic}; its PointCloud2 topics: {listed}")
        if topic not in clouds:
            raise UserError(f"{self.path}: topic {topic} is {self.topic_infos[topic].msgtype}, not a PointCloud2; "
                            f"its PointCloud2 topics: {listed}")
        return topic

    def scans(self, topic: str | None = None, intensity_field: str | None = None) -> Iterator[BagScan]:
        """The topic's messages as BagScans, in order. Reading stops at the first record that cannot be read (a
        cut-off bag); `problem` then says where and why, and the scans before it have been yielded."""
        topic = self.resolve_topic(topic)
        ros1 = self.topic_infos[topic].ros1
        self.problem = None
        index = 0
        it = self._source.messages(topic)
        while True:
            try:
                got = next(it, None)
            except Exception as e:  # noqa: BLE001  whatever the reader hit (truncation, corruption) ends the read here
                listed = self.topic_infos[topic].count or self._listed.get(topic)
                self.problem = (f"{self.path}: unreadable after {index}{f' of {listed}' if listed else ''} message(s) of "
                                f"{topic} ({_reason(e)})")
                return
            if got is None:
                return
            yield _scan(index, topic, *got, ros1=ros1, intensity_field=intensity_field)
            index += 1

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_bag(path: str | os.PathLike) -> Bag:
    """Open a rosbag2 folder, .mcap, .db3 or ROS 1 .bag; UserError for a missing path or a file that is no bag."""
    return Bag(path)


def _scan(index: int, topic: str, log_time: int, raw: Any, *, ros1: bool, intensity_field: str | None) -> BagScan:
    try:
        cloud = parse_pointcloud2(raw, ros1=ros1)
    except UserError as e:
        return BagScan(index, topic, log_time, log_time, "", None, UserError(f"{topic} message {index}: {e}"))
    return BagScan(index, topic, log_time, cloud.stamp_ns, cloud.frame_id, cloud, intensity_field=intensity_field)


def require_rosbags() -> Any:
    """The rosbags package, or a UserError naming the extra."""
    try:
        import rosbags  # noqa: F401
    except ImportError:
        raise UserError(f"reading ROS bags needs the rosbags package: {ROS_HINT}") from None
    return rosbags


def _metadata_counts(folder: Path) -> dict[str, int]:
    """{topic: message count} from a rosbag2 folder's metadata.yaml (empty where there is none or it is unreadable)."""
    import yaml

    try:
        meta = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {t["topic_metadata"]["name"]: int(t["message_count"]) for t in meta["topics_with_message_count"]}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


def _storage_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mcap", ".db3") and p.is_file())


def open_source(path: Path) -> Source:
    """The reader for a bag path: rosbags where it opens the bag, else the record-by-record reader of its kind."""
    require_rosbags()
    from pointpillars_trt.io import bag_recovery

    if not path.exists():
        raise UserError(f"bag not found: {path}")
    if path.is_dir():
        files = _storage_files(path)
        if (path / "metadata.yaml").is_file():
            from rosbags.rosbag2 import Reader

            try:
                return _opened(Reader(path), "rosbag2 folder", ros1=False)
            except Exception as e:  # noqa: BLE001  a cut-off storage file: read the files themselves below
                if not files:
                    raise UserError(f"{path}: not a readable rosbag2 folder ({_reason(e)})") from None
        if not files:
            raise UserError(f"{path}: folder has no metadata.yaml, .mcap or .db3 file")
        return bag_recovery.chain([open_source(f) for f in files]) if len(files) > 1 else open_source(files[0])
    if path.stat().st_size == 0:
        raise UserError(f"bag {path} is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix not in BAG_SUFFIXES:
        raise UserError(f"{path}: not a ROS bag name (expected a rosbag2 folder, {', '.join(BAG_SUFFIXES)})")
    try:
        if suffix == ".bag":
            from rosbags.rosbag1 import Reader as Reader1

            return _opened(Reader1(path), "ROS 1 bag", ros1=True)
        if suffix == ".mcap":
            from rosbags.rosbag2.storage_mcap import McapReader

            return _opened(McapReader(path), "MCAP file", ros1=False)
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

        return _opened(Sqlite3Reader(path), "rosbag2 sqlite3 file", ros1=False)
    except Exception as e:  # noqa: BLE001  rosbags refuses cut-off files; try reading record by record
        return bag_recovery.salvage(path, _reason(e))


def _reason(e: BaseException) -> str:
    """The exception as one line: its type and first line."""
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Rosbags:
    """A rosbags reader (rosbag2 Reader, its MCAP / sqlite3 storage readers, or rosbag1 Reader), opened."""

    def __init__(self, reader: Any, how: str, ros1: bool) -> None:
        self._reader, self.how, self._ros1 = reader, how, ros1

    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for c in self._reader.connections:
            known = out.get(c.topic)
            count = c.msgcount + (known.count or 0 if known else 0)
            out[c.topic] = TopicInfo(c.msgtype, count, self._ros1 or _ros1_encoded(c))
        return out

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        conns = [c for c in self._reader.connections if c.topic == topic]
        for _, log_time, raw in self._reader.messages(conns):
            yield log_time, raw

    def close(self) -> None:
        self._reader.close()


def _ros1_encoded(connection: Any) -> bool:
    """An MCAP channel of ROS 1 messages (message_encoding 'ros1') inside a rosbag2 reader."""
    return getattr(getattr(connection, "ext", None), "serialization_format", "cdr") == "ros1"


def _opened(reader: Any, how: str, *, ros1: bool) -> _Rosbags:
    reader.open()
    return _Rosbags(reader, how, ros1)
