"""A model's identity for result files: the weights' sha256 and the config's digest, known without loading the model
(a folder run compares it with the results already there before it loads anything)."""
from __future__ import annotations

import os
from pathlib import Path

from pointpillars_trt.model.config import PointPillarsConfig

_SHA: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256: a checkpoint is hashed once a process


def _weights_sha(path: str | os.PathLike) -> str:
    from pointpillars_trt.model.hashing import file_sha256

    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = file_sha256(path)
    return _SHA[key]


def of_checkpoint(path: str | os.PathLike, cfg: PointPillarsConfig) -> str:
    """'sha256:<first 16 hex of the checkpoint>/<config digest>'."""
    return f"sha256:{_weights_sha(path)[:16]}/{cfg.digest()}"


def of_onnx(onnx_dir: str | os.PathLike, cfg: PointPillarsConfig) -> str:
    """An export's identity: its checkpoint's (as the manifest records it, so that an export and its checkpoint
    are one model), else the hash of its ONNX files' hashes."""
    import hashlib

    from pointpillars_trt.model.manifest import read_manifest

    m = read_manifest(onnx_dir)
    sha = (m.get("checkpoint") or {}).get("sha256")
    if not sha:
        files = sorted((name, f.get("sha256", "")) for name, f in (m.get("files") or {}).items())
        return f"onnx:{hashlib.sha256(repr(files).encode()).hexdigest()[:16]}/{cfg.digest()}"
    return f"sha256:{sha[:16]}/{cfg.digest()}"


def of_random_init(seed: int, cfg: PointPillarsConfig) -> str:
    """The seeded random-init model: its seed names its weights."""
    return f"random-init-seed{seed}/{cfg.digest()}"
