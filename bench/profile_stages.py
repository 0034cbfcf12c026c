"""Where a scan's GPU time goes, kernel by kernel (launch-by-launch, CUDA events around N repetitions).

Post-processing kernels depend on each other's state, so they are timed as growing prefixes of the six launches
(1, 1-2, 1-4, 1-5, 1-6) and reported as differences. Run: python bench/profile_stages.py SCAN CKPT [fp16|fp32]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointpillars_trt.model import tensor_names as tn  # noqa: E402
from pointpillars_trt.model.config import PointPillarsConfig  # noqa: E402
from pointpillars_trt.pipelines.cuda_runtime import Event  # noqa: E402
from pointpillars_trt.pipelines.factory import make_gpu_pipeline  # noqa: E402
from pointpillars_trt.plugins.pillar_scatter import scatter_pillars  # noqa: E402
from pointpillars_trt.stages import postprocess_cuda as pc  # noqa: E402

REPS = 50


def timed(pipe, fn) -> float:
    s = pipe.stream
    a, b = Event(), Event()
    fn()
    s.synchronize()
    a.record(s)
    for _ in range(REPS):
        fn()
    b.record(s)
    s.synchronize()
    return a.elapsed_ms(b) / REPS * 1e3  # microseconds


def main() -> None:
    scan, ckpt = Path(sys.argv[1]), Path(sys.argv[2])
    prec = sys.argv[3] if len(sys.argv) > 3 else "fp16"
    cfg = PointPillarsConfig()
    pipe = make_gpu_pipeline(cfg, "torch", prec, checkpoint=ckpt, graph=False, compile=False)
    pts = np.fromfile(scan, np.float32).reshape(-1, 4)
    with pipe:
        r = pipe.run(pts)
        it, ns, s = pipe.items[0], pipe._ns, pipe.stream
        cap = pipe.bucket(len(pts))
        cap_p = it.vox.pillar_capacity(cap)
        print(f"{scan.name}: {len(pts)} points (bucket {cap}, PFN rows {cap_p}), {r.stats.num_pillars} pillars, "
              f"{len(r.detections)} detections; candidates {int(it.post.nsel.copy_to_host()[0])}")
        res = {"voxelize (5 kernels)": timed(pipe, lambda: it.vox.enqueue(cap, ns)),
               "pfn": timed(pipe, lambda: pipe.pfn.infer({tn.PFN_INPUT: it.features[:cap_p],
                                                          "num_pillars": it.vox.buf.num_pillars},
                                                         {tn.PFN_OUTPUT: it.pf[:cap_p]}, s.handle)),
               "scatter": timed(pipe, lambda: scatter_pillars(it.pf_nb, it.vox.buf.coords, it.vox.buf.num_pillars,
                                                              pipe._canvas_nb, cap_p, ns)),
               "rpn": timed(pipe, lambda: pipe.rpn.infer({tn.RPN_INPUT: pipe.canvas[:1]},
                                                         {k: v[:1] for k, v in pipe.heads.items()}, s.handle))}
        post = it.post
        nb = (post.A + pc.TPB - 1) // pc.TPB
        nc = cfg.num_classes

        def k1():
            pc._scores_hist[nb, pc.TPB, ns](it.heads.cls, it.vox.buf.num_pillars, nc, post._thr, post.K, post.scores,
                                            post.labels, post.hist1, post.sel, post._done1)

        def k2():
            k1()
            pc._refine[nb, pc.TPB, ns](post.scores, post._thr, post.K, post.sel, post.hist2, post._done2)

        def k4():
            post.enqueue_candidates(it.heads, it.vox.buf.num_pillars, ns)

        def k5():
            k4()
            pc._nms_mask[pc.mask_blocks(post.K), pc.MASK_THREADS, ns](post.nsel, post.boxes, post._nms_thresh,
                                                                      post.mask)

        def k6():
            post.enqueue(it.heads, it.vox.buf.num_pillars, it.vox.buf.stats, it.header, it.dets, ns)

        t = [timed(pipe, f) for f in (k1, k2, k4, k5, k6)]
        res.update({"post: scores+hist": t[0], "post: refine": t[1] - t[0], "post: compact+sort+decode": t[2] - t[1],
                    "post: nms mask": t[3] - t[2], "post: nms greedy": t[4] - t[3]})
        for k, v in res.items():
            print(f"  {k:28s} {v:8.1f} us")


if __name__ == "__main__":
    main()
