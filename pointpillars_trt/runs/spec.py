"""DetectorSpec: which model and options make a Detector, as plain data, so that a detector can be built where it
runs (a Ray actor on another machine) and its results' identity is known before anything loads."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pointpillars_trt.api import Detector
from pointpillars_trt.cache_dir import default_cache_dir
from pointpillars_trt.errors import UserError
from pointpillars_trt.model import identity
from pointpillars_trt.model import store

SOURCES = ("default", "checkpoint", "onnx", "random_init")


@dataclass(frozen=True)
class DetectorSpec:
    """A Detector to build: source is default | checkpoint | onnx | random_init, path the checkpoint or export
    folder, seed the random-init seed, options the keyword arguments of Detector.from_* (precision, backend,
    device, max_batch, cache_dir, ...). Picklable."""

    source: str = "default"
    path: str | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise UserError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if (self.path is None) != (self.source in ("default", "random_init")):
            raise UserError(f"a {self.source} spec {'needs' if self.path is None else 'takes no'} path")

    @classmethod
    def checkpoint(cls, path: str | os.PathLike, **options: Any) -> "DetectorSpec":
        return cls("checkpoint", os.fspath(path), options=options)

    @classmethod
    def onnx(cls, onnx_dir: str | os.PathLike, **options: Any) -> "DetectorSpec":
        return cls("onnx", os.fspath(onnx_dir), options=options)

    @classmethod
    def default(cls, **options: Any) -> "DetectorSpec":
        return cls("default", options=options)

    @classmethod
    def random_init(cls, seed: int = 0, **options: Any) -> "DetectorSpec":
        return cls("random_init", seed=seed, options=options)

    def with_options(self, **options: Any) -> "DetectorSpec":
        """The same model with some options replaced (e.g. device='cpu' for a worker without a GPU)."""
        return replace(self, options={**self.options, **options})

    def absolute(self) -> "DetectorSpec":
        """The same spec with its files (path, config, cache_dir: this process's default if not given) as absolute
        paths, for processes elsewhere (Ray workers) to find what this one prepared."""
        opts = {"cache_dir": default_cache_dir(), **self.options}
        opts = {k: os.path.abspath(v) if k in ("config", "cache_dir") and isinstance(v, (str, os.PathLike)) else v
                for k, v in opts.items()}
        return replace(self, path=None if self.path is None else os.path.abspath(self.path), options=opts)

    def build(self) -> Detector:
        """The Detector (its model exported, engines built or tuned kernels loaded as its options say)."""
        if self.source == "checkpoint":
            return Detector.from_checkpoint(self.path, **self.options)
        if self.source == "onnx":
            return Detector.from_onnx(self.path, **self.options)
        if self.source == "random_init":
            return Detector.random_init(seed=self.seed, **self.options)
        return Detector.default(**self.options)

    def prepare(self) -> store.ModelFiles:
        """The model files, made once here (a checkpoint's ONNX export into the cache), so that detectors built
        from this spec afterwards, e.g. one per GPU at once, find them instead of each exporting them."""
        cfg = store.load_config(self.options.get("config"))
        cache = Path(self.options["cache_dir"]) if self.options.get("cache_dir") else default_cache_dir()
        if self.source == "checkpoint":
            return store.from_checkpoint(self.path, cfg, cache)
        if self.source == "onnx":
            return store.from_onnx_dir(self.path, cfg)
        if self.source == "random_init":
            return store.random_init(cfg, cache, self.seed)
        return store.default_model(cfg, cache)

    def identity(self) -> str:
        """What Detector.model_id will say for the built detector, without building it (hashes the checkpoint)."""
        cfg = store.load_config(self.options.get("config"))
        if self.source == "checkpoint":
            if not os.path.isfile(self.path):
                raise UserError(f"checkpoint not found: {self.path}")
            return identity.of_checkpoint(self.path, cfg)
        if self.source == "onnx":
            return identity.of_onnx(self.path, cfg)
        if self.source == "random_init":
            return identity.of_random_init(self.seed, cfg)
        if not store.DEFAULT_CHECKPOINT.is_file():
            store.default_model(cfg, store.DEFAULT_CHECKPOINT.parent)  # its one-line error: the file is missing
        return identity.of_checkpoint(store.DEFAULT_CHECKPOINT, cfg)

    @property
    def max_batch(self) -> int:
        return int(self.options.get("max_batch", 1))

    @property
    def precision(self) -> str:
        return str(self.options.get("precision", "fp32"))
