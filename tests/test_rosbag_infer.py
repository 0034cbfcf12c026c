"""`infer BAG` on real bags written from the shared KITTI scans: the three containers and two driver layouts give the
.bin scans' detections; the Foxglove MCAP and the Rerun recording read back; cut-off bags, missing topics and bad
clouds are reported and the rest processed. CPU, the default model, two messages a bag."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bags import CONTAINERS, OUSTER, STAMP0, VELODYNE, cut, kitti_bag, message, records, typestore, write
from conftest import ALL_SCANS, KITTI
from pointpillars_trt.cli import main

SCANS = ALL_SCANS[:2]  # scans/000000.bin, 000001.bin: infer --out names them 000000.json, 000001.json, as a bag's index
CPU = ["--device", "cpu", "--show", "0"]


def _dets(path):
    return json.loads(path.read_text())["detections"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The .bin scans' detections, through the command as files."""
    out = tmp_path_factory.mktemp("ref")
    assert main(["infer", *map(str, SCANS), "--out", str(out), *CPU]) == 0
    return [_dets(out / f"{s.stem}.json") for s in SCANS]


@pytest.mark.parametrize("layout", [VELODYNE, OUSTER], ids=["velodyne", "ouster"])
@pytest.mark.parametrize("container", CONTAINERS)
def test_bag_detections_equal_the_bin_results(tmp_path, reference, container, layout):
    bag = kitti_bag(tmp_path / "drive", container, SCANS, layout)
    out = tmp_path / "out"
    assert main(["infer", str(bag), "--out", str(out), *CPU]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000.json", "000001.json"]
    for i, want in enumerate(reference):
        doc = json.loads((out / f"{i:06d}.json").read_text())
        assert doc["detections"] == want and len(want) > 0
        assert (doc["stamp_ns"], doc["frame_id"], doc["topic"], doc["index"]) == \
            (STAMP0 + i * 100_000_000, "velodyne", "/points", i)


def test_foxglove_mcap_and_rerun_recording_read_back(tmp_path, reference):
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    bag = kitti_bag(tmp_path / "drive", "mcap", SCANS)
    mcap, rrd = tmp_path / "boxes.mcap", tmp_path / "drive.rrd"
    assert main(["infer", str(bag), "--mcap", str(mcap), "--rerun", str(rrd), *CPU]) == 0
    with open(mcap, "rb") as f:
        msgs = list(make_reader(f).iter_messages())
    updates = [(m.log_time, s.name, s.encoding, m.data) for s, c, m in msgs if c.topic == "/detections"]
    assert [u[:3] for u in updates] == [(STAMP0 + i * 100_000_000, "foxglove.SceneUpdate", "protobuf") for i in range(2)]
    for (_, _, _, data), want in zip(updates, reference):
        scene = SceneUpdate.FromString(data)
        (entity,) = scene.entities
        assert entity.frame_id == "velodyne" and len(entity.cubes) == len(want) == len(entity.texts)
        top = entity.cubes[0]
        # the JSON rounds boxes to 5 decimals, the scene keeps the float: equal within that rounding (rounding both
        # to 4 decimals failed where a value sat on a rounding edge: 8.71975)
        assert np.allclose([top.pose.position.x, top.size.x], [want[0]["x"], want[0]["dx"]], rtol=0, atol=1e-5)
        assert entity.texts[0].text == f"{want[0]['label']} {want[0]['score']:.2f}"
        assert np.isclose(2 * np.arctan2(top.pose.orientation.z, top.pose.orientation.w) % (2 * np.pi),
                          want[0]["yaw"] % (2 * np.pi), atol=1e-4)
    clouds = [PointCloud.FromString(m.data) for s, c, m in msgs if c.topic == "/points"]
    pts = np.frombuffer(clouds[1].data, "<f4").reshape(-1, 4)
    np.testing.assert_array_equal(pts, np.fromfile(SCANS[1], np.float32).reshape(-1, 4))

    from rerun.chunk import RrdReader

    boxes = [c.to_record_batch() for c in RrdReader(rrd).store().stream().to_chunks()
             if c.entity_path == "/velodyne/detections"]
    rows = [(t, len(lab)) for b in boxes for t, lab in zip(b.column("message_time").to_pylist(),
                                                         b.column("Boxes3D:labels").to_pylist())]
    assert [n for _, n in sorted(rows)] == [len(w) for w in reference]
    labels = [lab for b in boxes for lab in b.column("Boxes3D:labels").to_pylist()]
    assert f"{reference[0][0]['label']} {reference[0][0]['score']:.2f}" in labels[0] + labels[1]


def test_folder_of_scans_writes_viewer_files_with_the_index_as_time(tmp_path, reference):
    from mcap.reader import make_reader

    mcap, rrd = tmp_path / "scans.mcap", tmp_path / "scans.rrd"
    assert main(["infer", *map(str, SCANS), "--mcap", str(mcap), "--rerun", str(rrd), *CPU]) == 0
    with open(mcap, "rb") as f:
        times = [m.log_time for _, c, m in make_reader(f).iter_messages() if c.topic == "/detections"]
    assert times == [0, 1_000_000_000]
    from rerun.chunk import RrdReader

    seq = [t for c in RrdReader(rrd).store().stream().to_chunks() if c.entity_path == "/lidar/detections"
           for t in c.to_record_batch().column("scan").to_pylist()]
    assert sorted(seq) == [0, 1]
    assert main(["infer", *map(str, SCANS), "--mcap", str(mcap), *CPU]) == 2  # never overwritten without --force


# Where a cut leaves whole messages (4 messages of about 450 kB, measured): rosbags' MCAP and ROS 1 writers close a
# chunk at about 1 MB (3 messages), so a cut at 50-70 % leaves none and 80-95 % leave 3; its sqlite3 writer commits
# once, at close, putting the rows' first bytes at about 76 % of the file, so the same holds for .db3.
CUT = 0.9


@pytest.mark.parametrize("container", CONTAINERS)
def test_cut_off_bag_processes_the_readable_messages_and_reports_the_rest(tmp_path, capsys, container):
    scans = ALL_SCANS[:4]
    bag = cut(kitti_bag(tmp_path / "drive", container, scans), CUT)
    out = tmp_path / "out"
    assert main(["infer", str(bag), "--out", str(out), *CPU]) == 1
    err = capsys.readouterr().err
    done = sorted(out.iterdir())
    assert 1 <= len(done) < 4, err
    assert f"unreadable after {len(done)}" in err and "the messages before it were processed" in err
    assert "Traceback" not in err


def test_topic_errors_list_the_pointcloud2_topics(tmp_path, capsys):
    store = typestore(False)
    rec = records(np.fromfile(SCANS[0], np.float32).reshape(-1, 4), VELODYNE)
    cloud = message(store, rec, VELODYNE, STAMP0)
    chat = store.types["std_msgs/msg/String"](data="hello")
    bag = write(tmp_path / "two", "db3", {"/front/points": [(STAMP0, cloud)], "/rear/points": [(STAMP0, cloud)],
                                          "/chatter": [(STAMP0, chat)]})
    for extra, expect in (([], "has several PointCloud2 topics; pick one with --topic"),
                          (["--topic", "/nope"], "has no topic /nope"),
                          (["--topic", "/chatter"], "topic /chatter is std_msgs/msg/String, not a PointCloud2")):
        assert main(["infer", str(bag), *extra, *CPU]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and expect in err and "/front/points (1 messages), /rear/points (1 messages)" in err


def test_bad_clouds_are_skipped_and_the_rest_processed(tmp_path, capsys, reference):
    store = typestore(True)
    pts = [np.fromfile(s, np.float32).reshape(-1, 4) for s in SCANS]
    no_x = message(store, records(pts[0], VELODYNE), VELODYNE, STAMP0,
                   fields=[f for f in VELODYNE[0] if f[0] != "x"])
    empty = message(store, records(pts[0][:0], VELODYNE), VELODYNE, STAMP0)
    good = [message(store, records(p, VELODYNE), VELODYNE, STAMP0) for p in pts]
    bag = write(tmp_path / "bad", "ros1", {"/points": [(STAMP0 + i, m) for i, m in
                                                       enumerate([good[0], no_x, empty, good[1]])]})
    out = tmp_path / "out"
    assert main(["infer", str(bag), "--out", str(out), *CPU]) == 1
    err = capsys.readouterr().err
    assert "/points message 1: PointCloud2 has no x field" in err and "/points message 2: empty PointCloud2" in err
    assert sorted(p.name for p in out.iterdir()) == ["000000.json", "000003.json"]
    assert _dets(out / "000003.json") == reference[1]


def test_api_iterates_a_bag_into_detector_stream(tmp_path, reference):
    from pointpillars_trt import Detector
    from pointpillars_trt.io.rosbag import open_bag

    bag = kitti_bag(tmp_path / "drive", "mcap", SCANS, OUSTER)
    with open_bag(bag) as b:
        stamp, frame_id, points = next(iter(b.scans()))
        np.testing.assert_array_equal(points, np.fromfile(SCANS[0], np.float32).reshape(-1, 4))
        assert (stamp, frame_id) == (STAMP0, "velodyne")
        with Detector.default(device="cpu") as det:
            got = [(s.index, s.stamp, r.detections) for s, r in det.stream(b.scans(), prefetch=2)]
    assert [g[:2] for g in got] == [(0, STAMP0), (1, STAMP0 + 100_000_000)]
    assert [len(d) for *_, d in got] == [len(w) for w in reference]
    assert [round(float(d.scores[0]), 6) for *_, d in got] == [w[0]["score"] for w in reference]


@pytest.mark.parametrize("module, flag, extra", [("rosbags", None, "pointpillars_trt[ros]"),
                                                 ("rerun", "--rerun", "pointpillars_trt[rerun]"),
                                                 ("mcap_protobuf.writer", "--mcap", "pointpillars_trt[ros]")])
def test_missing_extra_is_one_line_naming_it(tmp_path, capsys, monkeypatch, module, flag, extra):
    bag = kitti_bag(tmp_path / "drive", "mcap", SCANS[:1])
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    args = [flag, str(tmp_path / ("x.rrd" if flag == "--rerun" else "x.mcap"))] if flag else []
    assert main(["infer", str(bag), *args, *CPU]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and extra in err and "\n" not in err


def test_view_rerun_writes_points_boxes_and_ground_truth(tmp_path):
    from rerun.chunk import RrdReader

    frame = KITTI / "training"
    rrd = tmp_path / "view.rrd"
    assert main(["view", str(frame / "velodyne/000000.bin"), "--labels", str(frame / "label_2/000000.txt"),
                 "--calib", str(frame / "calib/000000.txt"), "--rerun", str(rrd), "--no-detect"]) == 0
    paths = {c.entity_path for c in RrdReader(rrd).store().stream().to_chunks()}
    assert {"/lidar/points", "/lidar/detections", "/lidar/ground_truth"} <= paths


def test_make_sample_bag_holds_the_scans(tmp_path):
    from pointpillars_trt.io.points import read_bin
    from pointpillars_trt.io.rosbag import open_bag

    for name in ("drive", "drive.bag"):
        assert main(["make-sample", "--out", str(tmp_path / "s"), "--frames", "2", "--bag", str(tmp_path / name),
                     "--force"]) == 0
        with open_bag(tmp_path / name) as b:
            got = [(s.frame_id, s.read_points()) for s in b.scans()]
        assert [g[0] for g in got] == ["lidar", "lidar"]
        for i, (_, pts) in enumerate(got):
            np.testing.assert_array_equal(pts, read_bin(tmp_path / f"s/training/velodyne/00000{i}.bin"))
