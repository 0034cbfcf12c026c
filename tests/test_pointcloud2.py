"""PointCloud2 decoding from the message's own field table (io/pointcloud2.py), checked against the KITTI scans the
test encodes itself and against rosbags' own deserializer: driver layouts, float64, integer intensity, big-endian,
organised clouds with padding and NaN, and the refusals (no x/y/z, empty, short data)."""
from __future__ import annotations

import numpy as np
import pytest

from bags import OUSTER, STAMP0, VELODYNE, message, records, typestore
from conftest import ALL_SCANS
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.pointcloud2 import decode, parse_pointcloud2

SCAN = np.fromfile(ALL_SCANS[0], np.float32).reshape(-1, 4)


def _roundtrip(msg, ros1: bool, **kw):
    store = typestore(ros1)
    raw = (store.serialize_ros1 if ros1 else store.serialize_cdr)(msg, "sensor_msgs/msg/PointCloud2")
    return decode(parse_pointcloud2(raw, ros1=ros1), **kw)


@pytest.mark.parametrize("ros1", [False, True], ids=["cdr", "ros1"])
def test_parse_matches_rosbags_deserializer(ros1):
    store = typestore(ros1)
    msg = message(store, records(SCAN, OUSTER), OUSTER, STAMP0, "os_sensor")
    raw = (store.serialize_ros1 if ros1 else store.serialize_cdr)(msg, "sensor_msgs/msg/PointCloud2")
    want = (store.deserialize_ros1 if ros1 else store.deserialize_cdr)(raw, "sensor_msgs/msg/PointCloud2")
    got = parse_pointcloud2(raw, ros1=ros1)
    assert got.stamp_ns == want.header.stamp.sec * 10**9 + want.header.stamp.nanosec == STAMP0
    assert got.frame_id == want.header.frame_id == "os_sensor"
    assert [(f.name, f.offset, f.datatype, f.count) for f in got.fields] == \
        [(f.name, f.offset, f.datatype, f.count) for f in want.fields]
    assert (got.height, got.width, got.point_step, got.row_step, got.is_bigendian) == \
        (want.height, want.width, want.point_step, want.row_step, want.is_bigendian)
    assert bytes(got.data) == want.data.tobytes()


@pytest.mark.parametrize("layout", [VELODYNE, OUSTER], ids=["velodyne", "ouster"])
@pytest.mark.parametrize("ros1", [False, True], ids=["cdr", "ros1"])
def test_driver_layouts_decode_to_the_scan(layout, ros1):
    pts, stats = _roundtrip(message(typestore(ros1), records(SCAN, layout), layout, STAMP0), ros1)
    assert pts.dtype == np.float32 and pts.flags.c_contiguous
    np.testing.assert_array_equal(pts, SCAN)
    assert stats.num_points == len(SCAN) and stats.num_nonfinite == 0 and stats.intensity == "intensity"


def test_float64_coordinates_uint16_intensity_big_endian():
    layout = ([("intensity", "u2", 0), ("x", "f8", 2), ("y", "f8", 10), ("z", "f8", 18)], 28)
    src = SCAN.astype(np.float64)
    src[:, 3] = np.round(SCAN[:, 3] * 65535)
    for big in (False, True):
        pts, _ = _roundtrip(message(typestore(False), records(src, layout, big=big), layout, STAMP0, big=big), False)
        want = np.column_stack([src[:, :3].astype(np.float32), src[:, 3].astype(np.float32)])
        np.testing.assert_array_equal(pts, want)


def test_uint8_intensity_and_intensity_field():
    layout = ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8), ("intensity", "u1", 12), ("reflectivity", "u2", 13)], 16)
    src = SCAN.copy()
    src[:, 3] = np.round(SCAN[:, 3] * 255)
    rec = records(src, layout)
    pts, _ = _roundtrip(message(typestore(True), rec, layout, STAMP0), True)
    np.testing.assert_array_equal(pts, src)
    pts, stats = _roundtrip(message(typestore(True), rec, layout, STAMP0), True, intensity_field="reflectivity")
    np.testing.assert_array_equal(pts[:, 3], (np.arange(len(src)) % 64).astype(np.float32))
    assert stats.intensity == "reflectivity"
    with pytest.raises(UserError, match="no field 'ambient'.*fields: x y z intensity reflectivity"):
        _roundtrip(message(typestore(True), rec, layout, STAMP0), True, intensity_field="ambient")


def test_organised_cloud_with_row_padding_and_nan():
    """height 64 rows, row_step past width * point_step, missing returns as NaN (as organised drivers publish)."""
    n = len(SCAN) // 64 * 64
    src = SCAN[:n].copy()
    src[::7, :3] = np.nan
    msg = message(typestore(False), records(src, OUSTER), OUSTER, STAMP0, height=64, row_pad=24)
    pts, stats = _roundtrip(msg, False)
    np.testing.assert_array_equal(pts, src[np.isfinite(src).all(axis=1)])
    assert stats.num_nonfinite == len(src[::7])


def test_refusals_are_one_line_user_errors():
    store = typestore(False)
    no_y = [f for f in VELODYNE[0] if f[0] != "y"]
    with pytest.raises(UserError, match=r"no y field \(fields: x z intensity ring time\)"):
        _roundtrip(message(store, records(SCAN, VELODYNE), VELODYNE, STAMP0, fields=no_y), False)
    with pytest.raises(UserError, match="empty PointCloud2"):
        _roundtrip(message(store, records(SCAN[:0], VELODYNE), VELODYNE, STAMP0), False)
    nan = SCAN[:10].copy()
    nan[:, 0] = np.nan
    with pytest.raises(UserError, match="all 10 points"):
        _roundtrip(message(store, records(nan, VELODYNE), VELODYNE, STAMP0), False)
    msg = message(store, records(SCAN[:10], VELODYNE), VELODYNE, STAMP0)
    msg.data = msg.data[:-5]
    with pytest.raises(UserError, match="holds 215 bytes.*needs 220"):
        _roundtrip(msg, False)
    with pytest.raises(UserError, match="not a readable PointCloud2"):
        parse_pointcloud2(b"\x00\x01\x00\x00\x01\x02", ros1=False)


def test_no_intensity_field_reads_zeros():
    layout = ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8)], 12)
    pts, stats = _roundtrip(message(typestore(False), records(SCAN, layout), layout, STAMP0), False)
    np.testing.assert_array_equal(pts, np.column_stack([SCAN[:, :3], np.zeros(len(SCAN), np.float32)]))
    assert stats.intensity is None
