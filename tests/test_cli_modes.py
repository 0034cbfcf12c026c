"""The detector-driven modes end to end through the CLI: eval --data on generated frames, view with a model, bench on the CPU."""
from __future__ import annotations

import json
import re

import numpy as np

from conftest import ALL_SCANS, KITTI
from test_cli_bad_input import assert_one_line_error, cli


def test_eval_data_runs_detector_then_evaluates(tmp_path, onnx_dir):
    """Two generated frames: results are written for each, FOV-cropped, and evaluated (an untrained model: AP ~ 0)."""
    root = tmp_path / "kitti"
    assert cli("make-sample", "--out", root, "--frames", "2", "--seed", "3").returncode == 0
    out = tmp_path / "eval"
    r = cli("eval", "--data", root, "--onnx-dir", onnx_dir, "--out", out, "--protocol", "devkit")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "results").iterdir()) == ["000000.txt", "000001.txt"]
    res = json.loads((out / "eval.json").read_text())
    assert res["protocol"] == "devkit"  # --data passes the protocol through
    assert "Car" in json.dumps(res) and (out / "table.txt").is_file()
    # the ground truth evaluated as results scores 100 (the same evaluator, sanity of the wiring)
    labels = root / "training/label_2"
    as_results = tmp_path / "gt_as_results"
    as_results.mkdir()
    for f in labels.iterdir():
        (as_results / f.name).write_text("".join(l.rstrip() + " 1.0\n" for l in f.read_text().splitlines() if l.strip()))
    r = cli("eval", "--results", as_results, "--labels", labels, "--out", tmp_path / "e2", "--protocol", "devkit")
    assert r.returncode == 0, r.stderr
    assert "protocol devkit" in r.stdout.splitlines()[0]
    # with so few objects the devkit's 41-point score sampling caps AP below 100 (e.g. 9.09 for one easy car),
    # so compare: ground truth scores at least as high as the untrained model everywhere, and higher overall
    perfect = list(_numbers(json.loads((tmp_path / "e2/eval.json").read_text())["ap"]))
    model = list(_numbers(res["ap"]))
    assert len(perfect) == len(model) > 0
    pairs = [(p, m) for p, m in zip(perfect, model) if p is not None and m is not None]
    assert all(p >= m - 1e-6 for p, m in pairs)
    assert sum(p for p, _ in pairs) > sum(m for _, m in pairs) + 100
    # a second run into the same --out is refused without --force
    assert_one_line_error(cli("eval", "--data", root, "--onnx-dir", onnx_dir, "--out", out), "--force")


def _numbers(tree):
    """Every number in a nested JSON structure (AP values of eval.json)."""
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) or tree is None:
        yield tree


def test_fov_crop_keeps_points_in_the_image():
    from pointpillars_trt.cli.dataset import fov_mask
    from pointpillars_trt.io.kitti import Calib, read_bin

    calib = Calib.read(KITTI / "training/calib/000134.txt")
    pts = read_bin(KITTI / "training/velodyne/000134.bin")
    extra = np.array([[-10, 0, 0, 1], [5, 30, 0, 1], [5, -30, 0, 1], [30, 0, 25, 1]], np.float32)  # behind, sides, above
    m = fov_mask(np.vstack([pts, extra]), calib, (370, 1224))
    assert m[: len(pts)].all()  # velodyne_reduced scans are already cropped to the camera's view
    assert not m[len(pts):].any()


def test_view_with_model_writes_bev(tmp_path, onnx_dir):
    png = tmp_path / "v.png"
    r = cli("view", KITTI / "training/velodyne/000134.bin", "--onnx-dir", onnx_dir, "--bev", png,
            "--labels", KITTI / "training/label_2/000134.txt", "--calib", KITTI / "training/calib/000134.txt")
    assert r.returncode == 0, r.stderr
    assert "detections" in r.stdout and png.stat().st_size > 10_000


def test_bench_on_cpu_writes_one_record_per_device_and_what(tmp_path, onnx_dir):
    """bench --out DIR writes DIR/<date>_<device>_<what>.md + .json, each with its command, commit, device and date;
    the next run replaces the earlier record of the same what on the same device (with --force) and leaves others."""
    from pointpillars_trt.pipelines import bench_records

    scans, out = tmp_path / "scans", tmp_path / "results"
    scans.mkdir()
    for s in ALL_SCANS[:2]:
        (scans / s.name).write_bytes(s.read_bytes())
    tag = bench_records.this_device("cpu")[0]
    out.mkdir()
    (out / f"2020-01-02_{tag}_single-scan.md").write_text("an earlier record")
    (out / f"2020-01-02_{tag}_single-scan.json").write_text("{}")
    (out / f"2020-01-02_{tag}_soak.md").write_text("another what")
    (out / "2020-01-02_h200_single-scan.md").write_text("another device")
    argv = ["bench", scans, "--onnx-dir", onnx_dir, "--device", "cpu", "--iters", "2", "--warmup", "1",
            "--precisions", "fp32", "fp16", "--out", out]
    r = cli(*argv)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "--force" in r.stderr and "single-scan" in r.stderr
    assert (out / f"2020-01-02_{tag}_single-scan.md").read_text() == "an earlier record"
    r = cli(*argv, "--force")
    assert r.returncode == 0, r.stderr
    today = bench_records.today()
    stem = f"{today}_{tag}_single-scan"
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{stem}.json", f"{stem}.md", f"2020-01-02_{tag}_soak.md",
                                                           "2020-01-02_h200_single-scan.md"])
    md = (out / f"{stem}.md").read_text()
    head = md.split("\n\n| stage |")[0]
    assert head.startswith("# single-scan, CPU: ") and f"- date: {today}" in head and "- device: CPU: " in head
    assert re.search(r"- commit: ([0-9a-f]{7,}|unknown)", head)
    assert "- command: `python -m pointpillars_trt bench " in head and "--precisions fp32 fp16" in head
    for stage in ("voxelize", "pfn", "scatter", "rpn", "postprocess", "total"):
        assert f"| {stage} |" in md
    assert "fp16 median ms" in md
    data = json.loads((out / f"{stem}.json").read_text())
    assert data["record"]["what"] == "single-scan" and data["record"]["device"] == tag and data["record"]["date"] == today
    assert set(data["results"]) == {"onnxruntime (cpu) fp32", "onnxruntime (cpu) fp16"}
    assert data["results"]["onnxruntime (cpu) fp32"]["rpn"]["median_ms"] > 0


def test_bench_compare_configurations_and_cpu_refusal(tmp_path, onnx_dir):
    """--compare lists each precision, then that precision with each NAME changed (tf32 only for FP32, fp16-canvas
    only for FP16); on the CPU, where those options do not exist, it is a one-line error before any model work."""
    import argparse

    from pointpillars_trt.cli import bench

    p = argparse.ArgumentParser()
    bench.add_parser(p.add_subparsers())
    args = p.parse_args(["bench", "x", "--precisions", "fp16", "fp32", "--compare", "compile", "tf32", "eager",
                         "fp16-canvas", "cuda-input"])
    got = [(c.label, c.args.precision, c.gpu_options, c.cuda_input) for c in bench.configurations(args)]
    eager = {"graph": False, "compile": False, "fold": False}
    assert got == [("fp16", "fp16", {}, False), ("fp16 --no-compile", "fp16", {"compile": False}, False),
                   ("fp16 OpenPCDet-style eager", "fp16", eager, False),
                   ("fp16 FP32 canvas", "fp16", {"fp16_canvas": False}, False),
                   ("fp16 points on the GPU", "fp16", {}, True),
                   ("fp32", "fp32", {}, False), ("fp32 --no-compile", "fp32", {"compile": False}, False),
                   ("fp32 --strict-fp32", "fp32", {"tf32": False}, False),
                   ("fp32 OpenPCDet-style eager", "fp32", eager, False), ("fp32 points on the GPU", "fp32", {}, True)]
    assert args.precision == "fp32" and bench.COMPARE["eager"][0] == eager  # the copies are changed, never the parsed options
    r = cli("bench", tmp_path, "--onnx-dir", onnx_dir, "--device", "cpu", "--compare", "graph")
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "on the CPU" in r.stderr


def test_device_tags_name_records():
    from pointpillars_trt.pipelines.bench_records import device_tag, parse

    assert [device_tag(n) for n in ("NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090",
                                    "NVIDIA A100-SXM4-80GB")] == ["h200", "h100", "rtx4090", "a100"]
    assert parse("2026-12-02_h200_single-scan.md") == ("2026-12-02", "h200", "single-scan")
    assert parse("2026-12-01_cpu-2core_kitti-000134.bev.png") == ("2026-12-01", "cpu-2core", "kitti-000134")
    assert parse("bench_cpu_2core.md") is None and parse("2026-12-02_h200.md") is None


def test_bench_says_how_batches_ran() -> None:
    """bench --batch's line says when two batches ran on the GPU at once (their stage times then overlap)."""
    from pointpillars_trt.cli.bench import _overlap

    assert _overlap({"device_slots": 2}) == "host and GPU overlapped, 2 batches on the GPU at once"
    assert _overlap({"device_slots": 1}) == _overlap({}) == "host and GPU overlapped"
