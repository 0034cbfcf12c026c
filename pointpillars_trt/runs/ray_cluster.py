"""Joining or starting a Ray cluster, and sizing the detector actor pool to it: one actor per GPU (num_gpus=1),
else one CPU actor per node."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from pointpillars_trt.errors import UserError
from pointpillars_trt.runs.spec import DetectorSpec

RAY_EXTRA = 'pip install "pointpillars_trt[cluster]" (Ray Data)'


def require_ray() -> Any:
    """The ray module with Ray Data, or a UserError naming the extra that brings it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise UserError(f"--ray needs Ray Data ({type(e).__name__}: {e.name or e}); {RAY_EXTRA}") from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, connected: to the cluster already joined in this process, else `address`, else $RAY_ADDRESS, else a new
    local cluster of this machine's CPUs and GPUs. Its INFO logging is turned down to warnings."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise UserError(f"cannot start or join {where}: {str(e).splitlines()[0][:200]}") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": ours replace them
    return ray


@dataclass
class ActorPool:
    """How many detector actors, what each asks for, and the spec they build (device set to what they get)."""

    size: int
    gpus: float
    cpus: float
    task_cpus: float
    spec: DetectorSpec
    strategy: Any

    def describe(self) -> str:
        kind = "GPU" if self.gpus else "CPU"
        return f"{self.size} {kind} detector actor{'s' if self.size > 1 else ''}"


def actor_pool(ray: Any, spec: DetectorSpec) -> ActorPool:
    """One actor per GPU of the cluster (each num_gpus=1); where it has none, or device='cpu' was asked for, one CPU
    actor per node. An actor asks for one CPU, reading and writing tasks for half of one: the difference also keeps
    Ray Data from fusing the reading into the actors, where it would hold the GPU back."""
    import ray.data

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    device = spec.options.get("device", "auto")
    if device == "cuda" and not gpus:
        raise UserError("--device cuda: the Ray cluster has no GPU; drop --device cuda to run on CPU actors")
    if gpus and device != "cpu":
        size, per_gpu, run_on = gpus, 1.0, "cuda"
    else:
        size, per_gpu, run_on = max(1, sum(1 for n in ray.nodes() if n.get("Alive"))), 0.0, "cpu"
    return ActorPool(size, per_gpu, 1.0, 0.5, spec.with_options(device=run_on), ray.data.ActorPoolStrategy(size=size))


def worker_name() -> str:
    """This actor's host and device, as the summary counts scans per worker."""
    import ray

    ids = ray.get_gpu_ids()
    return f"{socket.gethostname()} " + (f"GPU {','.join(map(str, ids))}" if ids else f"CPU pid {os.getpid()}")
