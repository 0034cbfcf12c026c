"""Bags that rosbags refuses to open because the recording was cut off, read record by record up to the cut.

- MCAP without its footer and summary (a recorder killed mid-write): the `mcap` package's StreamReader reads the
  records in file order, decompressing chunks, until it meets the cut.
- ROS 1 .bag without its index (`rosbag record` killed: "reindex before reading"), or cut mid-record: the records
  (chunks of connection and message records, bz2 / lz4 / none) are walked from the start, as `rosbag reindex` does.
- sqlite3 .db3 cut mid-page: SQLite refuses the whole file ("database disk image is malformed") because its size is
  no whole number of pages; read through a VFS that shows only the whole pages and the header's page count that
  matches them, rows are read in rowid order until the first page that is gone.

Each source lists its topics in a first pass (to the cut) and reads the chosen topic in a second; the error at the
cut propagates from `messages`, where io/rosbag.Bag.scans turns it into its `problem` line.
"""
from __future__ import annotations

import bz2
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.pointcloud2 import POINTCLOUD2
from pointpillars_trt.io.rosbag import ROS_HINT, Source, TopicInfo, _reason

ROS1_MAGIC = b"#ROSBAG V2.0\n"
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"


def salvage(path: Path, reason: str) -> Source:
    """The record-by-record reader for a bag rosbags refused (`reason`); UserError when the file is no bag at all."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(MCAP_MAGIC):
        return McapStream(path)
    if head.startswith(ROS1_MAGIC):
        return Ros1Stream(path)
    if head.startswith(SQLITE_MAGIC):
        return Sqlite3Pages(path, reason)
    raise UserError(f"{path}: not a readable ROS bag ({reason})")


def chain(sources: list[Source]) -> Source:
    """Several storage files of one rosbag2 folder read one after the other."""
    return _Chain(sources)


class _Chain:
    def __init__(self, sources: list[Source]) -> None:
        self._sources = sources
        self.how = " + ".join(s.how for s in sources)

    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for s in self._sources:
            for t, i in s.topics().items():
                known = out.get(t)
                counts = (i.count, known.count if known else 0)
                out[t] = TopicInfo(i.msgtype, None if None in counts else sum(counts), i.ros1)  # type: ignore[arg-type]
        return out

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        for s in self._sources:
            if topic in s.topics():
                yield from s.messages(topic)

    def close(self) -> None:
        for s in self._sources:
            s.close()


def _normal_type(name: str) -> str:
    """ROS 1 'sensor_msgs/PointCloud2' -> 'sensor_msgs/msg/PointCloud2', as rosbags names both."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[-1]}" if len(parts) == 2 else name


# ---------------------------------------------------------------------------- MCAP
class McapStream:
    """An MCAP file read in record order with the `mcap` package (no summary needed)."""

    how = "MCAP file without its summary, read record by record"

    def __init__(self, path: Path) -> None:
        try:
            from mcap.records import Channel, Schema
        except ImportError:
            raise UserError(f"reading the cut-off MCAP {path} needs the mcap package: {ROS_HINT}") from None
        self.path = path
        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, int, bool]] = {}
        self.cut: str | None = None
        try:
            for rec in self._records():
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, rec.schema_id, rec.message_encoding == "ros1")
        except Exception as e:  # noqa: BLE001  the cut: the channels before it are listed
            self.cut = _reason(e)
        self._topics = {t: TopicInfo(_normal_type(schemas.get(sid, "?")), None, ros1) for t, sid, ros1 in channels.values()}
        self._channel_ids = {t: {cid for cid, v in channels.items() if v[0] == t} for t in self._topics}

    def _records(self) -> Iterator[Any]:
        from mcap.stream_reader import StreamReader

        with open(self.path, "rb") as f:
            yield from StreamReader(f).records

    def topics(self) -> dict[str, TopicInfo]:
        return self._topics

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        from mcap.records import Message

        ids = self._channel_ids[topic]
        for rec in self._records():
            if isinstance(rec, Message) and rec.channel_id in ids:
                yield rec.log_time, rec.data

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- ROS 1
class Ros1Stream:
    """A ROS 1 bag walked record by record (chunks opened), for bags without their index."""

    how = "ROS 1 bag without its index, read record by record"
    _OP_MSG, _OP_CHUNK, _OP_CONN = 2, 5, 7

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conns: dict[int, tuple[str, str]] = {}
        self.cut: str | None = None
        try:
            for _ in self._walk(None):
                pass
        except Exception as e:  # noqa: BLE001  the cut: the connections before it are listed
            self.cut = _reason(e)
        self._topics = {t: TopicInfo(_normal_type(typ), None, True) for t, typ in self._conns.values()}

    def topics(self) -> dict[str, TopicInfo]:
        return self._topics

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        yield from self._walk(topic)

    def close(self) -> None:
        pass

    def _walk(self, topic: str | None) -> Iterator[tuple[int, bytes]]:
        """(time ns, raw message) of the topic's messages; connections recorded on the way."""
        with open(self.path, "rb") as f:
            f.readline()  # the magic line
            for fields, data in _records(f):
                op = fields.get("op", b"\0")[0]
                if op == self._OP_CHUNK:
                    for inner, raw in _records_in(_unchunk(fields, data)):
                        yield from self._record(inner, raw, topic)
                else:
                    yield from self._record(fields, data, topic)

    def _record(self, fields: dict[str, bytes], data: bytes, topic: str | None) -> Iterator[tuple[int, bytes]]:
        op = fields.get("op", b"\0")[0]
        if op == self._OP_CONN:
            conn = struct.unpack("<I", fields["conn"])[0]
            self._conns[conn] = (fields["topic"].decode(), _header_fields(data).get("type", b"?").decode())
        elif op == self._OP_MSG and topic is not None:
            conn = struct.unpack("<I", fields["conn"])[0]
            if self._conns.get(conn, ("",))[0] == topic:
                sec, nsec = struct.unpack("<II", fields["time"])
                yield sec * 1_000_000_000 + nsec, data


def _records(f: BinaryIO) -> Iterator[tuple[dict[str, bytes], bytes]]:
    """(header fields, data) of each record until the end; ValueError at a record cut short."""
    while True:
        head = f.read(4)
        if not head:
            return
        header = _exact(f, _u32(head), "record header")
        data = _exact(f, _u32(_exact(f, 4, "data length")), "record data")
        yield _header_fields(header), data


def _records_in(buf: bytes) -> Iterator[tuple[dict[str, bytes], bytes]]:
    import io

    yield from _records(io.BytesIO(buf))


def _exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise ValueError(f"{what} cut short ({len(data)} of {n} bytes)")
    return data


def _u32(b: bytes) -> int:
    if len(b) < 4:
        raise ValueError("length cut short")
    return struct.unpack("<I", b)[0]


def _header_fields(header: bytes) -> dict[str, bytes]:
    out, pos = {}, 0
    while pos + 4 <= len(header):
        n = struct.unpack_from("<I", header, pos)[0]
        name, _, value = header[pos + 4:pos + 4 + n].partition(b"=")
        out[name.decode("latin-1")] = value
        pos += 4 + n
    return out


def _unchunk(fields: dict[str, bytes], data: bytes) -> bytes:
    kind = fields.get("compression", b"none").decode()
    if kind == "none":
        return data
    if kind == "bz2":
        return bz2.decompress(data)
    if kind == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"chunk compression {kind!r} unknown")


# ---------------------------------------------------------------------------- sqlite3
class Sqlite3Pages:
    """A rosbag2 .db3 cut mid-page, read through a VFS that ends it at its last whole page."""

    how = "rosbag2 sqlite3 file cut short, read page by page"

    def __init__(self, path: Path, reason: str) -> None:
        import apsw

        self.path = path
        name = f"whole-pages-{id(self)}"
        self._vfs = _whole_pages_vfs(apsw, name)
        try:
            self._db = apsw.Connection(f"file:{path}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                                       vfs=name)
            rows = list(self._db.execute("SELECT id, name, type, serialization_format FROM topics"))
        except apsw.Error as e:
            raise UserError(f"{path}: not a readable rosbag2 sqlite3 file ({reason}; page by page: {e})") from None
        self._ids = {name: tid for tid, name, _, _ in rows}
        self._topics = {name: TopicInfo(typ if typ != "sensor_msgs/PointCloud2" else POINTCLOUD2, None, fmt == "ros1")
                        for _, name, typ, fmt in rows}

    def topics(self) -> dict[str, TopicInfo]:
        return self._topics

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        cur = self._db.execute("SELECT timestamp, data FROM messages WHERE topic_id = ? ORDER BY id", (self._ids[topic],))
        for stamp, data in cur:
            yield stamp, data

    def close(self) -> None:
        self._db.close()


def _whole_pages_vfs(apsw: Any, name: str) -> Any:
    """A read-only VFS over the default one whose files end at their last whole page, with page 1's 'database size
    in pages' field (bytes 28-31) set to match, so SQLite reads the pages that are there."""

    class File(apsw.VFSFile):
        def __init__(self, vfs: str, filename: Any, flags: list[int]) -> None:
            super().__init__("", filename, flags)
            first = super().xRead(100, 0)
            page = struct.unpack(">H", first[16:18])[0] if len(first) >= 18 else 4096
            self._page = 65536 if page == 1 else page
            self._size = super().xFileSize() // self._page * self._page

        def xFileSize(self) -> int:
            return self._size

        def xRead(self, amount: int, offset: int) -> bytes:
            data = super().xRead(amount, offset)
            if offset < 32 <= offset + len(data):
                b = bytearray(data)
                b[28 - offset:32 - offset] = struct.pack(">I", self._size // self._page)
                data = bytes(b)
            return data

    class Vfs(apsw.VFS):
        def __init__(self) -> None:
            super().__init__(name, "")

        def xOpen(self, filename: Any, flags: list[int]) -> Any:
            return File(name, filename, flags)

    return Vfs()
