"""Engine files in engines/: named and keyed by what an engine depends on, so a stale one is never silently used.

An engine depends on the ONNX file it was built from (sha256), the network and
precision, the optimisation profile (min/opt/max of the one dynamic dimension:
pillars for the PFN, batch for the RPN), the TensorRT version that built it,
the TensorRT flavour that built it (``tensorrt`` or ``tensorrt_rtx``), the
compute capabilities it targets (the GPU's for the full builder; the chosen
set for TensorRT-RTX), and the version-compatibility flags. The file name
carries all of that in short form, e.g.

    pfn_fp16_p1-12000-40000_trt10.13.0_sm90_3f2a9c0d1e4b.engine
    rpn_fp16_b1-4_trt11.4.0_sm90_vc_77c1d0e2a9f3.engine
    rpn_fp16_b1-1_rtx1.7.1_sm80-86-89-120-121_77c1d0e2a9f3.engine

(the last part is the ONNX file's sha256, first 12 hex digits), and a JSON
sidecar ``<engine>.json`` holds the full key plus the engine file's own sha256,
so a truncated or overwritten engine is detected without TensorRT.

This module is pure Python: TensorRT enters only through the injected
``builder_fn`` (ONNX -> serialized plan bytes) and the optional ``check_fn``
(try to load an engine), so the logic is unit-tested without a GPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from pointpillars_trt.backends.tensorrt.flavour import FULL, TAGS, sm_tag
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.hashing import file_sha256
from pointpillars_trt.model.tensor_names import NETWORKS, PRECISIONS

SIDECAR_FORMAT = 1
ENGINE_SUFFIX = ".engine"

#: ONNX file -> key -> serialized plan (bytes-like); raises UserError on a failed build
BuilderFn = Callable[[Path, "EngineKey"], bytes]
#: raises (UserError or any Exception) when the engine at this path cannot be loaded
CheckFn = Callable[[Path], None]
LogFn = Callable[[str], None]


sha256_file = file_sha256  # the name the engine-key code uses


def short_version(version: str) -> str:
    """'10.13.0.35' -> '10.13.0': the part of a TensorRT version that goes into a file name."""
    return ".".join(version.split(".")[:3])


def _version_tuple(version: str) -> tuple[int, ...]:
    """'11.4.0.106' -> (11, 4, 0, 106); non-numeric parts count as 0."""
    out = []
    for p in version.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def trt_version_accepts(built: str, runtime: str, version_compatible: bool, exclude_lean_runtime: bool) -> bool:
    """Whether a runtime of version ``runtime`` may load a plan built by TensorRT ``built``.

    TensorRT docs, "Engine Compatibility": a plan is by default tied to the exact
    version that built it; a plan built with BuilderFlag.VERSION_COMPATIBLE runs on
    later versions (10.x plans on 11.x, 11.0 plans on later 11.x); but a plan that
    also has EXCLUDE_LEAN_RUNTIME needs the lean runtime of the *same* version
    (IRuntime.load_runtime / tensorrt_lean of that version).
    """
    if built == runtime:
        return True
    if version_compatible and not exclude_lean_runtime:
        return _version_tuple(runtime) >= _version_tuple(built)
    return False


@dataclass(frozen=True)
class Profile:
    """The one optimisation profile: min/opt/max of the input's leading (dynamic) dimension."""

    input_name: str
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not (1 <= self.min <= self.opt <= self.max):
            raise UserError(
                f"optimisation profile for '{self.input_name}' needs 1 <= min <= opt <= max, "
                f"got min={self.min} opt={self.opt} max={self.max}"
            )


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine file depends on; equal keys mean the engine can be reused."""

    network: str  # "pfn" | "rpn"
    precision: str  # "fp32" | "fp16"
    onnx_sha256: str  # full hex digest of the ONNX file
    profile: Profile
    trt_version: str  # trt.__version__ of the builder, e.g. "10.13.0.35"
    compute_capability: str  # "9.0"; TensorRT-RTX: the targeted set, "8.0,8.6,8.9,12.0,12.1"
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    flavour: str = FULL  # "tensorrt" | "tensorrt_rtx" (sidecars written before the field read as "tensorrt")

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def targets(self) -> tuple[str, ...]:
        """'8.0,8.6' -> ('8.0', '8.6'): the compute capabilities the plan runs on."""
        return tuple(self.compute_capability.split(","))

    @property
    def sm(self) -> str:
        """'9.0' -> 'sm90'; '8.0,8.6' -> 'sm80-86'."""
        return sm_tag(self.targets)

    @property
    def profile_tag(self) -> str:
        """'p1-12000-40000' for the PFN (pillars); 'b1-4' for the RPN (batch; opt shown only when not min)."""
        p = self.profile
        if self.network == "pfn":
            return f"p{p.min}-{p.opt}-{p.max}"
        return f"b{p.min}-{p.max}" if p.opt == p.min else f"b{p.min}-{p.opt}-{p.max}"

    def filename(self) -> str:
        """e.g. rpn_fp16_b1-4_trt10.13.0_sm90_<onnx sha256[:12]>.engine ('_vc'/'_vcx' for version-compatible plans)."""
        vc = ("_vcx" if self.exclude_lean_runtime else "_vc") if self.version_compatible else ""
        return (f"{self.network}_{self.precision}_{self.profile_tag}_{TAGS[self.flavour]}{short_version(self.trt_version)}"
                f"_{self.sm}{vc}_{self.onnx_sha256[:12]}{ENGINE_SUFFIX}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EngineKey":
        """Inverse of to_dict; raises KeyError/TypeError/ValueError on a malformed dict."""
        d = dict(d)
        d["profile"] = Profile(**d["profile"])
        return cls(**d)


def sidecar_path(engine_path: Path) -> Path:
    """<name>.engine -> <name>.engine.json"""
    return engine_path.with_name(engine_path.name + ".json")


def read_sidecar(engine_path: Path) -> Optional[dict[str, Any]]:
    """The sidecar's JSON, or None if it is missing or not valid JSON."""
    try:
        d = json.loads(sidecar_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def describe_differences(old: EngineKey, new: EngineKey, runtime_trt_version: Optional[str] = None) -> list[str]:
    """Human-readable reasons why an engine built for ``old`` must not be used for ``new`` (empty: usable)."""
    runtime = runtime_trt_version or new.trt_version
    why = []
    if old.network != new.network or old.precision != new.precision:
        why.append(f"built for {old.network} {old.precision}, not {new.network} {new.precision}")
    if old.onnx_sha256 != new.onnx_sha256:
        why.append(f"ONNX changed (sha256 {old.onnx_sha256[:12]} -> {new.onnx_sha256[:12]})")
    if old.profile != new.profile:
        o, n = old.profile, new.profile
        dim = "pillars" if new.network == "pfn" else "batch"
        why.append(f"profile {dim} min/opt/max {o.min}/{o.opt}/{o.max} -> {n.min}/{n.opt}/{n.max}")
    if old.flavour != new.flavour:
        why.append(f"TensorRT flavour changed ({old.flavour} -> {new.flavour})")
    if old.compute_capability != new.compute_capability:
        what = "GPU" if len(old.targets) == len(new.targets) == 1 else "compute capability targets"
        why.append(f"{what} changed ({old.sm} -> {new.sm})")
    if (old.version_compatible, old.exclude_lean_runtime) != (new.version_compatible, new.exclude_lean_runtime):
        why.append(f"version-compatible={old.version_compatible}/exclude-lean={old.exclude_lean_runtime} -> "
                   f"{new.version_compatible}/{new.exclude_lean_runtime}")
    if not trt_version_accepts(old.trt_version, runtime, old.version_compatible, old.exclude_lean_runtime):
        why.append(f"TensorRT changed ({old.trt_version} -> {runtime})")
    return why


@dataclass(frozen=True)
class CacheResult:
    """What find_or_build did: the engine to use and whether it was reused or (re)built, and why."""

    path: Path
    key: EngineKey
    action: str  # "cached" | "built" | "rebuilt"
    reasons: tuple[str, ...] = ()
    build_seconds: float = 0.0


def _inspect(path: Path, want: EngineKey, runtime_trt_version: Optional[str]) -> Optional[str]:
    """None if the engine at ``path`` is usable for ``want``; otherwise why not (one line)."""
    side = read_sidecar(path)
    if side is None:
        if not sidecar_path(path).exists():
            return "no sidecar .json, provenance unknown"
        return "sidecar .json is unreadable"
    try:
        have = EngineKey.from_dict(side["key"])
        recorded_sha = side["engine"]["sha256"]
    except (KeyError, TypeError, ValueError, UserError) as e:
        return f"sidecar .json is malformed ({type(e).__name__}: {e})"
    diffs = describe_differences(have, want, runtime_trt_version)
    if diffs:
        return "stale: " + "; ".join(diffs)
    try:
        actual = sha256_file(path)
    except OSError as e:
        return f"engine file is unreadable ({e.strerror or e})"
    if actual != recorded_sha:
        return "engine file is corrupt (its sha256 differs from the sidecar's)"
    return None


def check_prebuilt(path: Path, onnx_sha256: str, compute_capability: str, runtime_trt_version: str) -> Optional[str]:
    """None if an engine built elsewhere (any profile) may run here for this ONNX file; otherwise why not.

    For runtimes that cannot build (the lean runtime): the same staleness rules as find_or_build (ONNX hash, GPU,
    TensorRT version compatibility, engine checksum), with the engine's own profile and flags accepted as built.
    """
    side = read_sidecar(path)
    try:
        have = EngineKey.from_dict(side["key"]) if side else None
    except (KeyError, TypeError, ValueError, UserError):
        have = None
    if have is None:
        return _inspect(path, EngineKey("pfn", "fp32", onnx_sha256, Profile("x", 1, 1, 1), runtime_trt_version,
                                        compute_capability), runtime_trt_version)
    want = dataclasses.replace(have, onnx_sha256=onnx_sha256, compute_capability=compute_capability)
    return _inspect(path, want, runtime_trt_version)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, then rename: a crash never leaves half an engine."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_engine(path: Path, plan: bytes, key: EngineKey, build_info: Optional[dict[str, Any]] = None) -> None:
    """Write the engine and then its sidecar (engine first: an engine without a sidecar is never used)."""
    data = bytes(plan)
    sidecar_path(path).unlink(missing_ok=True)
    _atomic_write(path, data)
    side = {
        "format": SIDECAR_FORMAT,
        "key": key.to_dict(),
        "engine": {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
        "build": build_info or {},
    }
    _atomic_write(sidecar_path(path), (json.dumps(side, indent=2) + "\n").encode())


def find_or_build(
    onnx_path: Path,
    *,
    network: str,
    precision: str,
    profile: Profile,
    trt_version: str,
    compute_capability: str,
    engines_dir: Path,
    builder_fn: Optional[BuilderFn],
    log: LogFn,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    runtime_trt_version: Optional[str] = None,
    check_fn: Optional[CheckFn] = None,
    force: bool = False,
    build_info: Optional[dict[str, Any]] = None,
    flavour: str = FULL,
) -> CacheResult:
    """Return an up-to-date engine for this ONNX file, building it (with a message saying why) if none is usable.

    ``trt_version`` is the version an engine would be built with now (the
    builder's), ``runtime_trt_version`` the one that will load it (default: the
    same). ``builder_fn=None`` means no builder here (e.g. lean runtime only):
    then a missing or stale engine is a UserError naming the reason.
    """
    onnx_path = Path(onnx_path)
    engines_dir = Path(engines_dir)
    try:
        onnx_sha = sha256_file(onnx_path)
    except FileNotFoundError:
        raise UserError(f"ONNX file not found: {onnx_path}") from None
    except OSError as e:
        raise UserError(f"cannot read ONNX file {onnx_path}: {e.strerror or e}") from None
    want = EngineKey(network, precision, onnx_sha, profile, trt_version, compute_capability,
                     version_compatible, exclude_lean_runtime, flavour)
    label = f"{network} {precision}"
    reasons: list[str] = []
    if engines_dir.is_dir() and not force:
        candidates = sorted(engines_dir.glob(f"{network}_{precision}_*{ENGINE_SUFFIX}"),
                            key=lambda p: (p.name != want.filename(), -p.stat().st_mtime))
        for path in candidates:
            why = _inspect(path, want, runtime_trt_version)
            if why is None and check_fn is not None:
                try:
                    check_fn(path)
                except Exception as e:  # a plan TensorRT refuses is as unusable as a corrupt one
                    why = f"cannot be loaded ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
            if why is None:
                log(f"{label}: using {path}")
                return CacheResult(path, want, "cached", tuple(reasons))
            reasons.append(f"{path.name}: {why}")
            log(f"{label}: not using {path} — {why}")
    elif force:
        reasons.append("--force")
    target = engines_dir / want.filename()
    if builder_fn is None:
        detail = "; ".join(reasons) if reasons else f"no engine in {engines_dir}/"
        raise UserError(
            f"no usable TensorRT engine for {label} ({detail}); build it with `pointpillars-trt build` "
            f"where a TensorRT builder is installed, or use --backend torch/onnxruntime"
        )
    action = "rebuilt" if reasons else "built"
    log(f"{label}: building {target.name} from {onnx_path}"
        + (" (engines above that are not overwritten stay in place; delete them if unused)" if reasons else ""))
    engines_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = builder_fn(onnx_path, want)
    seconds = time.perf_counter() - t0
    if plan is None or len(plan) == 0:
        raise UserError(f"TensorRT produced no engine for {label} from {onnx_path}")
    info = {"seconds": round(seconds, 3), "onnx_path": str(onnx_path),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    info.update(build_info or {})
    write_engine(target, plan, want, info)
    return CacheResult(target, want, action, tuple(reasons), seconds)


def check_fits(path: Path, needed: int) -> None:
    """A one-line UserError when the engine's profile (from its sidecar) takes fewer pillars/scans than ``needed``."""
    side = read_sidecar(path) or {}
    try:
        key = EngineKey.from_dict(side["key"])
    except (KeyError, TypeError, ValueError, UserError):
        return  # provenance unknown: the runner checks each shape against the engine itself
    if key.profile.max < needed:
        flag, what = ("--max-pillars", "pillars") if key.network == "pfn" else ("--max-batch", "scans per batch")
        raise UserError(f"{path.name} takes at most {key.profile.max} {what} but {needed} are needed; "
                        f"rebuild it with `pointpillars-trt build {flag} {needed}`")
