"""bench/tools.py, the measurements the `bench` command does not make, run as written on real files: weight shards
(how a trained model leaves the device machine), detection agreement of result folders, the evaluation's timing
record, `keep`, which files a device run's records into bench/results, the linked folders and host costs of folder
runs, and the repacked wheels that carry Ray to the device machine."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np

from conftest import CHECKPOINT, KITTI, REPO

TOOLS = REPO / "bench" / "tools.py"


@functools.cache
def tools():
    """bench/tools.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("bench_tools", TOOLS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*argv, cwd=None, **env_extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, str(TOOLS), *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_weight_shards_round_trip(tmp_path):
    """split keeps each weight in exactly one shard and drops nothing; join gives the checkpoint's weights back."""
    import torch

    r = run("weights", "split", CHECKPOINT, tmp_path, 3)
    assert r.returncode == 0, r.stderr
    shards = sorted(tmp_path.glob("weights_*.pth"))
    assert [p.name for p in shards] == ["weights_0.pth", "weights_1.pth", "weights_2.pth"]
    parts = [torch.load(p, weights_only=True)["model_state"] for p in shards]
    assert sum(len(p) for p in parts) == len(set().union(*parts))
    r = run("weights", "join", tmp_path / "joined.pth", *shards)
    assert r.returncode == 0, r.stderr
    want = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["model_state"]
    got = torch.load(tmp_path / "joined.pth", weights_only=True)["model_state"]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_weights_fp16_is_the_default_models_storage(tmp_path):
    """fp16 of the stored default model gives it back tensor for tensor, with its metadata; of an FP32 checkpoint,
    each weight within FP16's rounding and loadable (load_checkpoint upcasts)."""
    import torch

    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.model.networks import load_checkpoint

    default = REPO / "data/models/pointpillars_synthetic.pth"
    r = run("weights", "fp16", default, tmp_path / "again.pth")
    assert r.returncode == 0, r.stderr
    want, got = (torch.load(p, map_location="cpu", weights_only=True) for p in (default, tmp_path / "again.pth"))
    assert sorted(got) == sorted(want) and got["train_args"] == want["train_args"] and got["storage"] == want["storage"]
    assert all(torch.equal(got["model_state"][k], v) for k, v in want["model_state"].items())
    r = run("weights", "fp16", CHECKPOINT, tmp_path / "half.pth")
    assert r.returncode == 0, r.stderr
    full = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["model_state"]
    half = torch.load(tmp_path / "half.pth", weights_only=True)
    assert "optimizer_state" not in half and (tmp_path / "half.pth").stat().st_size < 10_000_000
    for k, v in full.items():
        h = half["model_state"][k]
        assert h.dtype == (torch.float16 if v.is_floating_point() else v.dtype)
        torch.testing.assert_close(h.to(v.dtype), v, rtol=1e-3, atol=1e-4)
    nets = load_checkpoint(tmp_path / "half.pth", PointPillarsConfig())
    assert all(p.dtype == torch.float32 for p in nets.parameters())


def test_agree_counts_matching_detections(tmp_path):
    """A folder against itself agrees fully; with one frame's boxes moved 3 m, that frame's boxes do not match."""
    from pointpillars_trt.evaluation.synthetic import noisy_detections, random_labels
    from pointpillars_trt.io.kitti import write_labels

    rng = np.random.default_rng(0)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    sizes = []
    for i in range(4):
        dets = noisy_detections(rng, random_labels(rng, 6), n_false=0)
        sizes.append(len(dets))
        write_labels(a / f"{i:06d}.txt", dets)
        if i == 2:
            dets.location[:, 0] += 3.0
        write_labels(b / f"{i:06d}.txt", dets)
    r = run("agree", a, a)
    assert r.returncode == 0, r.stderr
    assert f"score >= 0.0: {sum(sizes)}/{sum(sizes)} detections matched (100.00%" in r.stdout and "0 of 4 frames" in r.stdout
    r = run("agree", a, b)
    assert f"score >= 0.0: {sum(sizes) - sizes[2]}/{sum(sizes)} detections matched" in r.stdout
    assert "1 of 4 frames differ" in r.stdout


def test_eval_speed_writes_its_record(tmp_path):
    r = run("eval-speed", "--frames", "20", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    (md,) = tmp_path.glob("*_cpu-*core_eval-speed.md")
    text = md.read_text()
    assert "- command: `python bench/tools.py eval-speed --frames 20 --out" in text and "- commit: " in text
    assert "for 20 frames" in text
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["frames"] == 20 and data["seconds"] > 0 and data["record"]["what"] == "eval-speed"


def test_keep_replaces_the_earlier_record_of_its_kind(tmp_path):
    """Files back from a device run go into the results folder; the earlier record of the same what on the same
    device goes (all its files), others stay; a file not named as a record is refused in one line."""
    came, results = tmp_path / "came_back", tmp_path / "results"
    came.mkdir()
    results.mkdir()
    for name in ("2026-01-01_h200_soak.md", "2026-01-01_h200_soak.json", "2026-01-01_h200_soak.log",
                 "2026-01-01_h100_soak.md", "2026-01-01_h200_startup.md"):
        (results / name).write_text("old")
    for name in ("2026-02-03_h200_soak.md", "2026-02-03_h200_soak.json"):
        (came / name).write_text("new")
    r = run("keep", *sorted(came.iterdir()), "--into", results)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in results.iterdir()) == ["2026-01-01_h100_soak.md", "2026-01-01_h200_startup.md",
                                                         "2026-02-03_h200_soak.json", "2026-02-03_h200_soak.md"]
    (came / "bench_h200.md").write_text("x")
    r = run("keep", came / "bench_h200.md", "--into", results)
    assert r.returncode != 0 and "is not named <date>_<device>_<what>" in r.stderr and "Traceback" not in r.stderr


def test_link_scans_cycles_the_scans_and_keeps_what_is_there(tmp_path):
    """N names, the i-th the same file as the (i mod k)-th scan; a name already there is left as it is; a folder
    without scans is refused in one line."""
    scans = sorted((KITTI / "scans").glob("*.bin"))
    out = tmp_path / "linked"
    out.mkdir()
    (out / "000003.bin").write_bytes(b"mine")
    r = run("link-scans", KITTI / "scans", out, "--n", 23)
    assert r.returncode == 0, r.stderr
    assert f"23 scans in {out}" in r.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.bin" for i in range(23)]
    assert (out / "000003.bin").read_bytes() == b"mine"
    for i in (0, 9, 10, 22):
        assert os.path.samefile(out / f"{i:06d}.bin", scans[i % len(scans)])
    r = run("link-scans", tmp_path / "linked" / "none", tmp_path / "x")
    assert r.returncode != 0 and "no .bin scans" in r.stderr and "Traceback" not in r.stderr


def test_folder_host_times_each_step_and_leaves_nothing(tmp_path):
    """Every step's line with a positive time per scan, for JSON and JSON + KITTI txt; its scratch folder goes."""
    r = run("folder-host", KITTI / "scans", "--n", 40, "--calib", KITTI / "training/calib/000134.txt",
            TMPDIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    steps = ("read (stream's reader threads)", "format JSON", "write JSON", "plan a rerun (JSON)",
             "format JSON + KITTI txt", "write JSON + KITTI txt", "plan a rerun (JSON + KITTI txt)")
    times = {m[1]: float(m[2]) for m in re.finditer(r"^(\S.*?\S) +([\d.]+) us/scan", r.stdout, re.M)}
    assert sorted(times) == sorted(steps) and min(times.values()) > 0, r.stdout
    assert "n = 40" in r.stdout and not list(tmp_path.glob("folder-host-*"))


def test_ray_wheels_repack_drops_folders_and_pip_installs_it(tmp_path):
    """A wheel repacked without a folder: LZMA throughout, its RECORD lists exactly the files left with their
    sha256, and pip installs it, the files byte for byte."""
    import base64
    import hashlib
    import zipfile

    files = {"demo/__init__.py": b"VALUE = 1\n", "demo/core/bin.so": os.urandom(3000) * 4,
             "demo/jars/java.jar": b"x" * 5000, "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\n"
             b"Version: 1.0\n", "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
             b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("demo-1.0.dist-info/RECORD", "".join(f"{n},,\n" for n in [*files, "demo-1.0.dist-info/RECORD"]))
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / wheel.name
    tools().repack(wheel, out, drop=("demo/jars/",))
    kept = {n: d for n, d in files.items() if not n.startswith("demo/jars/")}
    with zipfile.ZipFile(out) as z:
        assert {i.filename for i in z.infolist()} == {*kept, "demo-1.0.dist-info/RECORD"}
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_LZMA}
        rows = [r.split(",") for r in z.read("demo-1.0.dist-info/RECORD").decode().split()]
    digest = lambda d: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()  # noqa: E731
    assert {n: (h, int(size)) for n, h, size in rows if h} == {n: (f"sha256={digest(d)}", len(d)) for n, d in kept.items()}
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert all((target / n).read_bytes() == d for n, d in kept.items() if not n.startswith("demo-1.0.dist-info"))
    assert not (target / "demo" / "jars").exists()
