"""What the `bench` command does not measure, one subcommand each (`python bench/tools.py SUBCOMMAND --help`):

  startup       time to the first detection of new processes, phase by phase (and the background compile after it)
  kernels       every GPU kernel of a scan by name, with its time per scan (torch.profiler around graph replays)
  fp16-vs-fp32  FP16 against FP32 graphs on the CPU over the shared scans: head differences, detections matched
  agree         detections of two KITTI result folders (e.g. `eval --data` at FP16 and FP32) matched one to one
  eval-speed    the KITTI evaluation's time on a val-sized synthetic set (3769 frames)
  weights       split a trained checkpoint's weights into shards (a device run returns files of at most 16 MiB), join them
  bag-decode    messages/s reading and decoding a ROS bag of KITTI-size clouds (what feeds `infer BAG`)
  mcap-picture  one scan of an `infer --mcap` file drawn from the file alone (what Foxglove would show)
  keep          copy record files back from a device run into bench/results, each replacing the earlier one of its kind
  link-scans    a folder of N scans made of a few (hard links cycling through them), as the folder runs use (7481)
  folder-host   a folder run's host costs per scan with the real code, no GPU: reading, formatting, writing, replanning
  folder-loop   the host ceiling of `infer DIR --out`: its real loop with the network's results replayed (no GPU)
  ray-wheels    the wheels that bring Ray Data to the device machine within its 64 MiB carry, into the ignored .whl/

Subcommands with --out DIR write a record there, as `bench --out` does (bench/results/README.md). Only the standard
library is imported up front, so that `startup` times the imports it measures.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))


def _record(args: argparse.Namespace, device: str, what: str, payload: dict, markdown: str) -> None:
    """Write the subcommand's record into --out (if given), with this command line, the commit and the device."""
    if not getattr(args, "out", None):
        return
    from pointpillars_trt.pipelines import bench_records as br

    tag, desc = br.this_device(device)
    command = "python bench/tools.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    rec = br.Record(what, tag, desc, command, br.git_commit(args.commit), br.today())
    for path in br.write(args.out, rec, payload, markdown, force=args.force):
        print(f"wrote {path}", flush=True)


# ---- startup ---------------------------------------------------------------------------------------------------
def startup(args: argparse.Namespace) -> int:
    """One process's phases (this one), or --processes N fresh ones run one after another (the first fills the
    caches when the machine is new), their outputs and whole-process times gathered into one record."""
    if args.processes == 0:
        return _startup_here(args)
    child = [sys.executable, __file__, "startup", str(args.scan), "--compile", args.compile, "--processes", "0"]
    if args.switch_interval is not None:
        child += ["--switch-interval", str(args.switch_interval)]
    parts = []
    for i in range(args.processes):
        t = time.perf_counter()
        r = subprocess.run(child, capture_output=True, text=True, timeout=args.timeout)
        tail = "\n".join(r.stdout.strip().splitlines()[-16:]) or r.stderr.strip()[-2000:]
        parts.append(f"## process {i + 1} of {args.processes}: {(time.perf_counter() - t) * 1e3:.0f} ms whole process, "
                     f"exit {r.returncode}\n\n```\n{tail}\n```")
        print(parts[-1], flush=True)
    _record(args, "cuda", "startup", {"processes": parts}, "\n\n".join(parts))
    return 0


def _startup_here(args: argparse.Namespace) -> int:
    marks: list[tuple[str, float]] = []
    mark = lambda what: marks.append((what, time.perf_counter()))  # noqa: E731
    import numpy as np

    mark("python + numpy")
    import torch  # noqa: F401

    mark("import torch")
    import pointpillars_trt as pp

    mark("import pointpillars_trt")
    from numba import cuda

    cuda.current_context()
    mark("CUDA context (numba)")
    if args.switch_interval is not None:
        from pointpillars_trt.backends import inductor_compile

        inductor_compile.SWITCH_INTERVAL_S = args.switch_interval / 1e3
        mark(f"switch interval while compiling {args.switch_interval:g} ms")
    prof = None
    if args.why:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    compile_ = {"off": False}.get(args.compile, args.compile)
    det = pp.Detector.default(device="cuda", precision="fp16", compile=compile_)
    mark("Detector.default (model files, pipeline, runners)")
    pts = np.fromfile(args.scan, np.float32).reshape(-1, 4)
    mark(f"first scan ({len(det(pts))} detections)")
    if prof:
        prof.disable()
        _explain(prof)
    first = marks[-1][1]
    det(pts)
    mark("second scan")
    during = _until_compiled(det, pts, args.stall_ms, mark)
    det.close()
    prev = T0
    for what, t in marks:
        print(f"{(t - prev) * 1e3:10.1f} ms  {what}")
        prev = t
    print(f"{(first - T0) * 1e3:10.1f} ms  to the first detection (compile={args.compile})")
    print(during, end="")
    return 0


def _until_compiled(det, pts, stall, mark) -> str:
    """With a background compile: the scans run meanwhile (wall times: they share the GIL with Dynamo), when the
    compiled RPN took over, and the scan time after it. stall (MS, FILE): every thread's stack into FILE whenever
    such a scan takes longer than MS (faulthandler's watchdog, which needs no GIL)."""
    import faulthandler

    import numpy as np

    if not det.pipeline.compiling:
        return ""
    dump = open(stall[1], "w") if stall else None
    t0, walls = time.perf_counter(), []
    while det.pipeline.compiling and time.perf_counter() - t0 < 300:
        t = time.perf_counter()
        if dump:
            faulthandler.dump_traceback_later(float(stall[0]) / 1e3, file=dump)
        det(pts)
        if dump:
            faulthandler.cancel_dump_traceback_later()
        walls.append(time.perf_counter() - t)
    if dump:
        dump.close()
    mark(f"scans until the compiled RPN took over ({len(walls)} scans)")
    det(pts)  # the first after the switch: eager once, then captured
    mark("first scan with the compiled RPN (captures its graph)")
    after, raw = [], []
    for _ in range(200):
        t = time.perf_counter()
        det(pts)
        after.append(time.perf_counter() - t)
    for _ in range(200):  # the pipeline without the Detector's input checks
        t = time.perf_counter()
        det.pipeline.run(pts)
        raw.append(time.perf_counter() - t)
    w, a, r = (np.array(x) * 1e3 for x in (walls, after, raw))
    return (f"while compiling: {len(w)} scans, wall p50 {np.median(w):.2f} ms, p99 {np.percentile(w, 99):.2f} ms, "
            f"max {w.max():.2f} ms\ncompiled (graph replays): detector(points) p50 {np.median(a):.3f} ms, p99 "
            f"{np.percentile(a, 99):.3f} ms; pipeline.run p50 {np.median(r):.3f} ms, p99 {np.percentile(r, 99):.3f} ms\n")


def _explain(prof) -> None:
    """Where the set-up and first scan went, and whether the compile caches were hit."""
    import io
    import pstats

    out = io.StringIO()
    st = pstats.Stats(prof, stream=out).sort_stats("cumulative")
    st.print_stats("pointpillars_trt", 30)
    st.print_stats("_inductor|_dynamo|numba", 30)
    print("\n".join(line[:170] for line in out.getvalue().splitlines() if line.strip()))
    from torch._dynamo.utils import counters

    for group in ("inductor", "aot_autograd", "dynamo_cache", "stats"):
        if counters.get(group):
            print(group, dict(counters[group]))


# ---- kernels ---------------------------------------------------------------------------------------------------
def kernels(args: argparse.Namespace) -> int:
    from collections import defaultdict

    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from pointpillars_trt.model.config import PointPillarsConfig
    from pointpillars_trt.model.store import DEFAULT_CHECKPOINT
    from pointpillars_trt.pipelines.factory import make_gpu_pipeline
    from pointpillars_trt.pipelines.timing import load_scans

    scans, b = load_scans(args.scans), args.batch
    pipe = make_gpu_pipeline(PointPillarsConfig(), "torch", args.precision, checkpoint=args.checkpoint or DEFAULT_CHECKPOINT,
                             compile=args.compile, pfn_kernel=not args.torch_pfn, graph=not args.no_graph, max_batch=b)
    batches = [[scans[(i * b + k) % len(scans)] for k in range(b)] for i in range(len(scans))]
    stage_ms = defaultdict(list)
    with pipe:
        for batch in batches * 2:
            pipe.run_batch(batch)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for i in range(args.reps):
                pipe.run_batch(batches[i % len(batches)])
            torch.cuda.synchronize()
        for i in range(args.reps):
            pipe.run_batch(batches[i % len(batches)])
            for k, v in pipe.times().items():
                stage_ms[k].append(v * 1e3)
    per = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            row = per[e.name if len(e.name) < 90 else e.name[:87] + "..."]
            row[0], row[1] = row[0] + 1, row[1] + e.device_time_total
    total = sum(v[1] for v in per.values())
    lines = ["stage medians per call (CUDA events): " + ", ".join(f"{k} {np.median(v):.3f}" for k, v in stage_ms.items()),
             f"{args.precision} compile={args.compile} torch_pfn={args.torch_pfn} graph={not args.no_graph} batch={b}: "
             f"{total / args.reps / 1e3:.3f} ms of kernels + copies per call ({total / args.reps / b / 1e3:.3f} per scan)",
             "", "| us per call | launches per call | kernel |", "|---|---|---|"]
    lines += [f"| {us / args.reps:.1f} | {n / args.reps:.1f} | `{name}` |"
              for name, (n, us) in sorted(per.items(), key=lambda kv: -kv[1][1])]
    print("\n".join(lines))
    _record(args, "cuda", "kernels", {"stage_median_ms": {k: float(np.median(v)) for k, v in stage_ms.items()}},
            "\n".join(lines))
    return 0


# ---- fp16-vs-fp32, agree ---------------------------------------------------------------------------------------
def match_fraction(a, b, iou: float = 0.9) -> tuple[int, int]:
    """Greedy one-to-one matches of a's boxes to b's with the same label and BEV IoU >= iou: (matched, max(len))."""
    import numpy as np

    from pointpillars_trt.stages.rotated_iou import bev_iou_matrix

    if len(a) == 0 or len(b) == 0:
        return 0, max(len(a), len(b))
    m = bev_iou_matrix(a.boxes.astype(np.float64), b.boxes.astype(np.float64))
    m[np.asarray(a.labels)[:, None] != np.asarray(b.labels)[None, :]] = 0
    free, hits = np.ones(len(b), bool), 0
    for i in range(len(a)):
        j = int(np.argmax(np.where(free, m[i], -1)))
        if m[i, j] >= iou:
            free[j], hits = False, hits + 1
    return hits, max(len(a), len(b))


def compare(cfg, onnx_dir: Path, scans: list[Path]) -> list[dict]:
    """Per scan: the largest head-output difference FP16 - FP32 per head, detections of each, and how many match."""
    import numpy as np

    from pointpillars_trt.backends.onnxruntime_runner import OnnxRuntimeRunner
    from pointpillars_trt.io.kitti import read_bin
    from pointpillars_trt.model import tensor_names as tn
    from pointpillars_trt.pipelines.cpu import CpuPipeline

    pipes = {p: CpuPipeline(cfg, OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("pfn", p)),
                            OnnxRuntimeRunner(onnx_dir / tn.onnx_filename("rpn", p))).__enter__() for p in tn.PRECISIONS}
    rows = []
    for scan in scans:
        res = {p: pipes[p].run(read_bin(scan)) for p in tn.PRECISIONS}
        diffs = {n: float(np.abs(pipes["fp16"].heads[n] - pipes["fp32"].heads[n]).max()) for n in tn.RPN_OUTPUTS}
        hits, total = match_fraction(res["fp32"].detections, res["fp16"].detections)
        rows.append({"scan": scan.name, **diffs, "fp32": len(res["fp32"].detections),
                     "fp16": len(res["fp16"].detections), "matched": hits, "of": total})
    return rows


def fp16_vs_fp32(args: argparse.Namespace) -> int:
    import tempfile

    from pointpillars_trt.model.config import PointPillarsConfig

    cfg, onnx_dir = PointPillarsConfig(), args.onnx_dir
    if onnx_dir is None:
        from pointpillars_trt.model.export import export_onnx
        from pointpillars_trt.model.networks import load_checkpoint

        onnx_dir = Path(tempfile.mkdtemp())
        export_onnx(load_checkpoint(args.checkpoint, cfg), onnx_dir, checkpoint=args.checkpoint)
    kitti = SHARED / "kitti"
    scans = sorted((kitti / "scans").glob("*.bin")) + [kitti / "training/velodyne/000134.bin",
                                                       kitti / "testing/velodyne/000002.bin"]
    rows = compare(cfg, onnx_dir, scans)
    lines = ["| scan | max|Δcls| | max|Δbox| | max|Δdir| | dets fp32 | dets fp16 | matched (IoU>=0.9, same class) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['scan']} | {r['cls_preds']:.4f} | {r['box_preds']:.4f} | {r['dir_cls_preds']:.4f} | {r['fp32']} | "
              f"{r['fp16']} | {r['matched']}/{r['of']} |" for r in rows]
    h, t = sum(r["matched"] for r in rows), sum(r["of"] for r in rows)
    lines.append(f"\nall scans: max |Δ| cls {max(r['cls_preds'] for r in rows):.4f}, box "
                 f"{max(r['box_preds'] for r in rows):.4f}, dir {max(r['dir_cls_preds'] for r in rows):.4f}; "
                 f"matched {h}/{t} = {100 * h / max(t, 1):.1f}%")
    print("\n".join(lines))
    _record(args, "cpu", "fp16-vs-fp32", {"rows": rows}, "\n".join(lines))
    return 0


def agree(args: argparse.Namespace) -> int:
    import numpy as np

    from pointpillars_trt.io.kitti import read_labels

    class Objects:  # boxes [N,7] and labels [N], as match_fraction reads them
        def __init__(self, path: Path, min_score: float) -> None:
            """The file's boxes in the camera's BEV plane (x, z, l, w, -ry) in the [x,y,z,dx,dy,dz,yaw] slots
            bev_iou_matrix reads; the same mapping for both sides, so IoUs are those of the KITTI boxes."""
            o = read_labels(path)
            keep = o.score >= min_score if o.score is not None and len(o) else np.zeros(len(o), bool)
            h, w, length = o.dimensions[keep].T
            x, y, z = o.location[keep].T
            self.boxes = (np.column_stack([x, z, y, length, w, h, -o.rotation_y[keep]]) if keep.any()
                          else np.zeros((0, 7)))
            self.labels = o.name[keep]

        def __len__(self) -> int:
            return len(self.labels)

    files = sorted(args.a.glob("*.txt"))
    for s in (0.0, 0.5):
        hits = total = differ = 0
        for fa in files:
            h, t = match_fraction(Objects(fa, s), Objects(args.b / fa.name, s))
            hits, total, differ = hits + h, total + t, differ + (h != t)
        print(f"score >= {s}: {hits}/{total} detections matched ({100 * hits / max(total, 1):.2f}%, same class, "
              f"BEV IoU >= 0.9); {differ} of {len(files)} frames differ")
    return 0


# ---- eval-speed ------------------------------------------------------------------------------------------------
def eval_speed(args: argparse.Namespace) -> int:
    import tempfile
    import warnings

    import numpy as np

    from pointpillars_trt.evaluation import evaluate, evaluate_dirs
    from pointpillars_trt.evaluation.synthetic import noisy_detections, random_labels
    from pointpillars_trt.io.kitti import read_labels, write_labels

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        labels, results = Path(tmp) / "label_2", Path(tmp) / "results"
        labels.mkdir()
        results.mkdir()
        for i in range(args.frames):
            gt = random_labels(rng, int(rng.integers(1, 25)))
            write_labels(labels / f"{i:06d}.txt", gt)
            write_labels(results / f"{i:06d}.txt", noisy_detections(rng, gt, n_false=args.false_positives))
        t0 = time.perf_counter()
        evaluate([read_labels(labels / "000000.txt")], [read_labels(results / "000000.txt")])
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = evaluate_dirs(results, labels, progress=False)
        total = time.perf_counter() - t0
    line = (f"evaluate_dirs (reading + evaluating): {total:.2f} s for {args.frames} frames, after a one-frame warm-up "
            f"(Numba compile or cache load) of {warm:.2f} s; Car 3D AP_R40 moderate {res.get('3d', 'Car', 'moderate'):.2f}")
    print(line)
    _record(args, "cpu", "eval-speed", {"seconds": total, "warmup_s": warm, "frames": args.frames}, line)
    return 0


# ---- weights, keep ---------------------------------------------------------------------------------------------
META = ("epoch", "it", "version", "train_args")


def weights(args: argparse.Namespace) -> int:
    """split CKPT OUT_DIR [N]: every N-th weight (sorted by name) into OUT_DIR/weights_i.pth with the checkpoint's
    metadata (the optimizer state stays behind); join OUT SHARD...: one OpenPCDet-format checkpoint again;
    fp16 CKPT OUT: the default model's storage (data/models/MODEL_CARD.md): float weights in FP16, no optimizer."""
    import torch

    if args.action == "fp16":
        ck = torch.load(args.paths[0], map_location="cpu", weights_only=True)
        state = {k: v.half() if v.is_floating_point() else v for k, v in ck["model_state"].items()}
        torch.save({"model_state": state, **{k: ck[k] for k in META if k in ck},
                    "storage": "float16 (load_checkpoint upcasts to float32)"}, args.paths[1])
        print(f"{args.paths[1]}: {len(state)} tensors in FP16 storage, iteration {ck.get('it')}")
        return 0
    if args.action == "split":
        ckpt, out_dir, n = args.paths[0], Path(args.paths[1]), int(args.paths[2]) if len(args.paths) > 2 else 2
        ck = torch.load(ckpt, map_location="cpu", weights_only=True)
        keys, meta = sorted(ck["model_state"]), {k: ck[k] for k in META if k in ck}
        for i in range(n):
            torch.save({"model_state": {k: ck["model_state"][k] for k in keys[i::n]}, **meta}, out_dir / f"weights_{i}.pth")
        print(f"{n} weight shards in {out_dir}: {len(keys)} tensors, iteration {ck.get('it')}")
        return 0
    state, meta = {}, {}
    for s in args.paths[1:]:
        ck = torch.load(s, map_location="cpu", weights_only=True)
        state.update(ck.pop("model_state"))
        meta = ck
    torch.save({"model_state": state, **meta}, args.paths[0])
    print(f"{args.paths[0]}: {len(state)} tensors, iteration {meta.get('it')}")
    return 0


def keep(args: argparse.Namespace) -> int:
    from pointpillars_trt.pipelines.bench_records import adopt

    for line in adopt(args.files, args.into):
        print(line)
    return 0


BAG_SCANS = sorted((SHARED / "kitti" / "scans").glob("*.bin"))


def _clouds(size: str) -> list:
    """The distinct clouds the bag cycles through."""
    import numpy as np

    scans = [np.fromfile(s, np.float32).reshape(-1, 4) for s in BAG_SCANS]
    if size == "20k":
        return scans
    out = []
    for k in range(len(scans)):
        parts = []
        for j in range(6):
            p = scans[(k + j) % len(scans)].copy()
            a = j * np.pi / 3
            c, s = np.cos(a), np.sin(a)
            p[:, 0], p[:, 1] = c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]
            parts.append(p)
        out.append(np.concatenate(parts))
    return out


def _make_bag(folder: Path, container: str, n: int, size: str) -> tuple[Path, float]:
    """A bag of n messages cycling the clouds, and their mean point count."""
    import numpy as np

    sys.path.insert(0, str(REPO / "tests"))
    from bags import STAMP0, VELODYNE, message, records, typestore, write

    store = typestore(container == "ros1")
    pcs = _clouds(size)
    msgs = [message(store, records(p, VELODYNE), VELODYNE, 0) for p in pcs]

    def stamped():
        for i in range(n):
            yield STAMP0 + i * 100_000_000, msgs[i % len(msgs)]

    path = write(folder / "bench", container, {"/points": list(stamped())})
    return path, float(np.mean([len(p) for p in pcs]))


def _timed_bag(bag: Path, decode: bool) -> tuple[float, int]:
    """Seconds and messages of one pass over the bag, decoding each cloud on 2 reading threads or not."""
    from pointpillars_trt.io.rosbag import open_bag
    from pointpillars_trt.pipelines.prefetch import prefetched

    start = time.perf_counter()
    n = pts = 0
    with open_bag(bag) as b:
        if decode:
            for scan, got in prefetched(b.scans(), lambda s: s.read_points(), 2):
                if isinstance(got, Exception):
                    raise got
                n, pts = n + 1, pts + len(got)
        else:
            for scan in b.scans():
                n += 1
    return time.perf_counter() - start, n

def bag_decode(args: argparse.Namespace) -> int:
    """Messages/s reading a ROS bag of KITTI-size PointCloud2 clouds (Velodyne layout: x y z intensity float32, ring
    uint16, time float32), written from the shared scans: `20k` cycles them as they are (camera-field crops), `120k`
    joins six turned 60 degrees apart (a full 64-beam sweep's size). Page cache warm (one untimed pass), it times
    `read` (container + PointCloud2 header parse) and `decode` (the same plus every cloud decoded on the reading
    threads, as Detector.stream does with prefetch 2). No model runs: this is what feeds the detector."""
    import os
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        t0 = time.perf_counter()
        bag, mean_pts = _make_bag(Path(tmp), args.container, args.messages, args.points)
        size = sum(f.stat().st_size for f in ([bag] if bag.is_file() else bag.iterdir()))
        print(f"bag: {args.messages} messages of {mean_pts:.0f} points on average ({args.points}), {args.container}, "
              f"{size / 1e6:.0f} MB, written in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores")
        _timed_bag(bag, True)  # page cache warm, imports done
        for what in ("read", "decode"):
            runs = [_timed_bag(bag, what == "decode") for _ in range(args.repeats)]
            rates = sorted(n / t for t, n in runs)
            print(f"{what:>6}: {' '.join(f'{r:.0f}' for r in rates)} messages/s "
                  f"(median {rates[len(rates) // 2]:.0f}; {rates[len(rates) // 2] * mean_pts / 1e6:.0f} M points/s)")
    return 0


def _mcap_scan(path: Path, k: int) -> tuple:
    """Points, boxes and frame_id of the k-th scan of the MCAP."""
    import numpy as np
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    from pointpillars_trt.io.detections import Detections
    from pointpillars_trt.model.config import PointPillarsConfig

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

def mcap_picture(args: argparse.Namespace) -> int:
    """One scan of a Foxglove MCAP written by `infer --mcap`, drawn from the file alone: the SceneUpdate's cubes (class
    from their text) over the PointCloud, as a bird's-eye PNG. It checks what Foxglove would show, without a display."""
    from pointpillars_trt.viz.bev import render_bev

    points, dets, frame = _mcap_scan(args.mcap, args.scan)
    render_bev(points, args.png, dets, title=f"{args.mcap.name} #{args.scan} ({frame}): SceneUpdate cubes, PointCloud")
    print(f"wrote {args.png}: {len(points)} points, {len(dets)} cubes")
    return 0


# ---- link-scans, folder-host: a folder of KITTI's training-set size, and the host's costs of a run over it -------
def _scans_in(folder: Path) -> list[Path]:
    from pointpillars_trt.errors import UserError

    scans = sorted(folder.glob("*.bin"))
    if not scans:
        raise UserError(f"{folder}: no .bin scans there")
    return scans


def link_scans(args: argparse.Namespace) -> int:
    from pointpillars_trt.runs.scan_links import linked_scans

    src = _scans_in(args.scans)
    linked_scans(src, args.n, args.out)
    print(f"{sum(1 for _ in args.out.iterdir())} scans in {args.out} (links to the {len(src)} scans of {args.scans})")
    return 0


def _per_scan(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:7.1f} us/scan ({n / seconds:7.0f} scans/s)"


def folder_host(args: argparse.Namespace) -> int:
    """Reading N scans on the stream's reader threads, formatting results (JSON; KITTI txt with --calib), writing N
    whole on the run's writer threads, planning a rerun over them: the default model's detections on the given scans
    (detected once, cycled), the scans read under N hard-linked names. A run at 2500 scans/s has 0.4 ms a scan."""
    import os
    import shutil
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from pointpillars_trt import Detector
    from pointpillars_trt.io.kitti import Calib
    from pointpillars_trt.io.points import read_points
    from pointpillars_trt.io.result_files import ResultFolder, ScanJob
    from pointpillars_trt.pipelines.prefetch import prefetched
    from pointpillars_trt.runs.scan_links import linked_scans
    from pointpillars_trt.runs.result_writers import WRITE_THREADS as WRITERS
    from pointpillars_trt.runs.single import run_settings

    scans = _scans_in(args.scans)
    calib = Calib.read(args.calib) if args.calib else None
    with Detector.default() as det:  # the detections a real run writes
        results = [det(read_points(s)) for s in scans]
        meta = {"model": det.description, "untrained": det.untrained}
        settings = run_settings(det.model_id, det.precision, det.cfg.score_thresh)
    names = det.cfg.class_names
    print(f"{len(scans)} scans, {sum(map(len, results)) / len(results):.1f} detections a scan on average; "
          f"{os.cpu_count()} cores; n = {args.n}")
    tmp = Path(tempfile.mkdtemp(prefix="folder-host-"))
    try:
        paths = linked_scans(scans, args.n, tmp / "scans")
        t = time.perf_counter()
        for _, got in prefetched(paths, read_points, args.prefetch):
            assert not isinstance(got, Exception), got
        print(f"read (stream's reader threads)     {_per_scan(time.perf_counter() - t, args.n)}")
        for what, c in (("JSON", None),) + ((("JSON + KITTI txt", calib),) if calib else ()):
            k = min(args.n, 2000)
            t = time.perf_counter()
            for i in range(k):
                d = results[i % len(results)]
                d.to_json(names, {"scan": str(paths[i]), **meta})
                if c is not None:
                    d.to_kitti(c, names)
            print(f"format {what:<26}  {_per_scan(time.perf_counter() - t, k)}  (one thread)")
            folder = ResultFolder(tmp / f"out_{len(what)}", settings)
            folder.out.mkdir()
            jobs = [ScanJob(p, p.stem, c) for p in paths]
            t = time.perf_counter()
            with ThreadPoolExecutor(WRITERS) as pool:
                for f in [pool.submit(folder.write, j, results[i % len(results)], names,
                                      {"scan": str(j.source), **meta}) for i, j in enumerate(jobs)]:
                    f.result()
            print(f"write {what:<27}  {_per_scan(time.perf_counter() - t, args.n)}  ({WRITERS} writer threads, "
                  "format + temporary file + rename)")
            t = time.perf_counter()
            plan = folder.plan(jobs)
            assert len(plan.skipped) == args.n, len(plan.skipped)
            print(f"plan a rerun ({what}){' ' * (22 - len(what))}{_per_scan(time.perf_counter() - t, args.n)}  "
                  "(all skipped)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


# ---- ray-wheels ------------------------------------------------------------------------------------------------
RAY = "ray==2.60.0"
#: Ray's dependencies the device image lacks (it has fsspec, packaging, pandas, pyarrow, msgpack, ...), pinned so
#: that their file names, which a call's carry list names, stay put
RAY_MISSING = ("jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==2026.9.1")
#: what a Python-only Ray Data run never loads: Java workers (31 MiB), the dashboard's web client (the runs pass
#: include_dashboard=False), RLlib, Serve, LLM (4.9 MiB more)
RAY_DROP = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/serve/", "ray/llm/")


def repack(wheel: Path, out: Path, drop: tuple[str, ...] = RAY_DROP) -> None:
    """The wheel without `drop`'s folders, LZMA-compressed (29 MiB where deflate gives 40 for Ray's binaries; pip
    reads either), its RECORD rewritten to list what is left."""
    import base64
    import hashlib
    import zipfile

    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_LZMA) as dst:
        record = next(n for n in src.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD"))
        rows = []
        for info in src.infolist():
            if info.filename.startswith(drop) or info.filename == record:
                continue
            data = src.read(info)
            dst.writestr(info, data, compress_type=zipfile.ZIP_LZMA)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{info.filename},sha256={digest},{len(data)}")
        dst.writestr(record, "\n".join(rows + [f"{record},,"]) + "\n")


def ray_wheels(args: argparse.Namespace) -> int:
    """Ray's cp312 wheel without what a Python-only Ray Data run never loads (Java, the dashboard's web client,
    RLlib, Serve, LLM), LZMA-compressed, and the dependencies the device image lacks, written into --out beside the
    wheels already there; then what `PART=ray bash bench/device.sh` must carry, and its size."""
    import shutil
    import tempfile

    args.out.mkdir(exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", args.python, "--platform", "manylinux2014_x86_64", "--dest", tmp, RAY,
                        *RAY_MISSING], check=True)
        for w in sorted(Path(tmp).glob("*.whl")):
            written.append(args.out / w.name)
            repack(w, written[-1]) if w.name.startswith("ray-") else shutil.copy(w, written[-1])
    carry = sorted(args.out.glob("numpy-*.whl")) + written
    for w in carry:
        print(f"{w.stat().st_size / 2**20:6.1f} MiB  {w.name}")
    rel = [str(w.relative_to(REPO)) if w.is_relative_to(REPO) else str(w) for w in carry]
    print(f"{sum(w.stat().st_size for w in carry) / 2**20:6.1f} MiB: carry for PART=ray (with .devshared/kitti/scans, "
          f"3 MiB, and the 12 MiB tree):\n  {rel + ['.devshared/kitti/scans']}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python bench/tools.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="tool", required=True, metavar="SUBCOMMAND")

    def add(name: str, func, help_: str, record: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        if record:
            p.add_argument("--out", type=Path, metavar="DIR", help="write the record DIR/<date>_<device>_<what>.md/.json")
            p.add_argument("--force", action="store_true", help="replace the earlier record of its kind in --out")
            p.add_argument("--commit", help="the commit measured, where the tree is no git checkout (default: HEAD)")
        return p

    p = add("startup", startup, "time to the first detection of a new process (default model, FP16, GPU)", True)
    p.add_argument("scan", type=Path)
    p.add_argument("--processes", type=int, default=0,
                   help="run N fresh processes one after another and gather them (default 0: measure this one)")
    p.add_argument("--timeout", type=float, default=300, help="seconds each of --processes may take")
    p.add_argument("--compile", choices=("auto", "now", "off"), default="auto")
    p.add_argument("--why", action="store_true", help="profile set-up and first scan; print the compile caches' counters")
    p.add_argument("--switch-interval", type=float, metavar="MS",
                   help="the thread switch interval while the background compile runs (the package's: 0.5 ms)")
    p.add_argument("--stall-ms", nargs=2, metavar=("MS", "FILE"),
                   help="every thread's stack into FILE whenever a scan during the background compile takes over MS")
    p = add("kernels", kernels, "every GPU kernel of a scan (or batch) by name, time per call", True)
    p.add_argument("scans", type=Path)
    p.add_argument("--checkpoint", type=Path, help="default: the default model")
    p.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--torch-pfn", action="store_true")
    p.add_argument("--no-graph", action="store_true")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=60)
    p = add("fp16-vs-fp32", fp16_vs_fp32, "FP16 against FP32 ONNX graphs on the CPU over the shared scans", True)
    p.add_argument("--checkpoint", type=Path, default=SHARED / "checkpoints/pointpillar_kitti_random_seed0.pth")
    p.add_argument("--onnx-dir", type=Path, help="an `export` folder instead of exporting --checkpoint")
    p = add("agree", agree, "detections of two KITTI result folders matched (same class, BEV IoU >= 0.9)")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p = add("eval-speed", eval_speed, "time of the KITTI evaluation over generated labels and noisy results", True)
    p.add_argument("--frames", type=int, default=3769)
    p.add_argument("--false-positives", type=float, default=15.0, help="mean random false positives per frame")
    p.add_argument("--seed", type=int, default=0)
    p = add("weights", weights, weights.__doc__)
    p.add_argument("action", choices=("split", "join", "fp16"))
    p.add_argument("paths", nargs="+", help="split: CKPT OUT_DIR [N]; join: OUT SHARD...; fp16: CKPT OUT")
    p = add("bag-decode", bag_decode, "messages/s reading and decoding a ROS bag of KITTI-size PointCloud2 clouds")
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--points", choices=("20k", "120k"), default="20k")
    p.add_argument("--container", choices=("mcap", "db3", "ros1"), default="mcap")
    p.add_argument("--repeats", type=int, default=3)
    p = add("mcap-picture", mcap_picture, "draw one scan of an `infer --mcap` file from the file alone (bird's-eye PNG)")
    p.add_argument("mcap", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--scan", type=int, default=0)
    p = add("keep", keep, "copy record files into a results folder, each replacing the earlier record of its kind")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--into", type=Path, default=REPO / "bench/results")
    p = add("link-scans", link_scans, "a folder of N scans made of a few: hard links cycling through them (names "
            "already there are kept)")
    p.add_argument("scans", type=Path, help="folder of .bin scans")
    p.add_argument("out", type=Path, help="folder to fill")
    p.add_argument("--n", type=int, default=7481, help="names to make (default 7481, KITTI's training set)")
    p = add("folder-host", folder_host, folder_host.__doc__)
    p.add_argument("scans", type=Path, help="folder of .bin scans (the default model detects each once)")
    p.add_argument("--n", type=int, default=7481, help="scans to read and results to write (default 7481)")
    p.add_argument("--calib", type=Path, help="a KITTI calib: also time the KITTI txt of each result")
    p.add_argument("--prefetch", type=int, default=64, help="reads ahead, as infer --batch 32 does (default 64)")
    from folder_loop import folder_loop

    p = add("folder-loop", folder_loop, folder_loop.__doc__ + " A measurement tool, not a test.")
    p.add_argument("scans", type=Path, help="folder of .bin scans (the default model detects each once, on the CPU)")
    p.add_argument("--n", type=int, default=3000, help="scans in the run (hard links; default 3000)")
    p.add_argument("--batch", type=int, default=32, help="scans per batch, as infer --batch (default 32)")
    p.add_argument("--calib", type=Path, help="a KITTI calib for every scan: KITTI txt files too")
    p.add_argument("--writers", choices=("threads", "processes"), help="how results are written (default: the run's)")
    p.add_argument("--readers", choices=("threads", "processes"), help="how scans are read (default: the run's)")
    p.add_argument("--lines", action="store_true", help="print each scan's line (to /dev/null), as infer -v does")
    p.add_argument("--repeat", type=int, default=2, help="runs, one after another (default 2)")
    p.add_argument("--profile", action="store_true", help="profile the main thread of the last run")
    p = add("ray-wheels", ray_wheels, ray_wheels.__doc__ + " bench/device.sh installs every wheel of .whl/ that came.")
    p.add_argument("--out", type=Path, default=REPO / ".whl", help="where the wheels go (default: the ignored .whl/)")
    p.add_argument("--python", default="3.12", help="the device's Python (default 3.12)")
    return ap


def main() -> int:
    from pointpillars_trt.errors import UserError

    a = parser().parse_args()
    try:
        if a.func is startup and a.out and a.processes == 0:
            raise UserError("--out gathers --processes N fresh processes into one record; add --processes N")
        return a.func(a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
