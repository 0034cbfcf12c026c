"""`cache`: list what the per-user cache holds (exported ONNX, engines, the demo model, Inductor's tuned kernels) with
sizes; `--clear --yes` empties it.

Only entries the project writes are listed as its own and removed; anything else in the folder (the cache
can be pointed anywhere with --cache-dir or $POINTPILLARS_TRT_CACHE) is named and left alone.
"""
from __future__ import annotations

import argparse
import fnmatch
import shutil
from pathlib import Path

from pointpillars_trt.cache_dir import ENV_VAR, default_cache_dir
from pointpillars_trt.errors import UserError

# what the commands write into the cache: ONNX exports, the demo checkpoint, TensorRT engines + sidecars, timing caches,
# and inductor/: the compiled torch RPN's tuned kernels (TORCHINDUCTOR_CACHE_DIR points there unless the user set it;
# clearing it makes the next GPU run tune again, about a minute per shape)
OURS = ("onnx", "random-init-seed*.pth", "*.engine", "*.engine.json", "timing_*.cache", "inductor")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `cache [--cache-dir DIR] [--clear --yes]`."""
    p = sub.add_parser("cache", help="list the model cache (exported ONNX, engines, tuned kernels) and its sizes; --clear empties it",
                       description=f"List the cache that infer/eval/view/bench/build use (default: ${ENV_VAR}, else "
                                   "$XDG_CACHE_HOME/pointpillars_trt, else ~/.cache/pointpillars_trt) with sizes.")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="the cache folder (default: %(default)s)")
    p.add_argument("--clear", action="store_true", help="delete the cached files (asks for --yes)")
    p.add_argument("--yes", action="store_true", help="confirm --clear")
    p.set_defaults(func=run)
    return p


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if not f.is_dir() or f.is_symlink())


def human(n: float) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def entries(cache: Path) -> tuple[list[Path], list[Path]]:
    """(the project's entries, anything else) in the cache folder; ONNX exports listed one by one."""
    ours, other = [], []
    for p in sorted(cache.iterdir()):
        if p.name == "onnx" and p.is_dir():
            ours += sorted(p.iterdir())
        elif any(fnmatch.fnmatch(p.name, pat) for pat in OURS):
            ours.append(p)
        else:
            other.append(p)
    return ours, other


def run(args: argparse.Namespace) -> int:
    """Print the listing; with --clear --yes remove the project's entries."""
    cache = args.cache_dir
    if cache.exists() and not cache.is_dir():
        raise UserError(f"--cache-dir {cache} is a file")
    if not cache.is_dir():
        print(f"{cache}: empty (not created yet)")
        return 0
    ours, other = entries(cache)
    sizes = {p: tree_size(p) for p in ours}
    print(f"{cache}: {len(ours)} cached item(s), {human(sum(sizes.values()))}")
    for p in ours:
        print(f"  {human(sizes[p]):>9}  {p.relative_to(cache)}{'/' if p.is_dir() else ''}")
    for p in other:
        print(f"  {'':>9}  {p.name}  (not written by pointpillars_trt; left alone)")
    if not args.clear or not ours:
        return 0
    if not args.yes:
        raise UserError(f"--clear would delete {len(ours)} item(s) ({human(sum(sizes.values()))}) in {cache}; add --yes to do it")
    for p in ours:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    onnx = cache / "onnx"
    if onnx.is_dir() and not any(onnx.iterdir()):
        onnx.rmdir()
    print(f"cleared {len(ours)} item(s), {human(sum(sizes.values()))}")
    return 0
