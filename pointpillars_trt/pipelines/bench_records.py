"""A measurement's record in a results folder: `<date>_<device>_<what>.md` + `.json`, each naming its command, commit,
device and date. A new record replaces the earlier one of the same what on the same device (bench/results/README.md),
so a folder holds one current record per (device, what)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from pointpillars_trt.errors import UserError

#: <date>_<device>_<what>[.<part>].<ext>: e.g. 2026-12-02_h200_single-scan.md, 2026-12-06_cpu-2core_kitti-000006.bev.png
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_([a-z0-9-]+)_([a-z0-9-]+)((?:\.[a-z0-9-]+)*)\.[a-z0-9]+$")
VENDOR_WORDS = {"nvidia", "geforce", "tesla", "quadro"}


@dataclass(frozen=True)
class Record:
    """What one measurement was: the record's name parts and the header every record file starts with."""

    what: str
    device: str  # the tag in the name: h200, cpu-2core
    device_desc: str  # e.g. "NVIDIA H200", "CPU: AMD EPYC 9654, 2 cores"
    command: str
    commit: str
    date: str

    @property
    def stem(self) -> str:
        return f"{self.date}_{self.device}_{self.what}"

    def header(self) -> str:
        """The markdown head: title, then command, commit, device and date."""
        return (f"# {self.what}, {self.device_desc}, {self.date}\n\n- command: `{self.command}`\n"
                f"- commit: {self.commit}\n- device: {self.device_desc}\n- date: {self.date}\n")


def device_tag(name: str) -> str:
    """A device name as a file-name word: 'NVIDIA H200' -> h200, 'NVIDIA GeForce RTX 4090' -> rtx4090,
    'NVIDIA H100 80GB HBM3' -> h100 (the words up to the first one with a digit, vendor words dropped)."""
    words = [w for w in re.split(r"[\s_-]+", name.lower()) if w and w not in VENDOR_WORDS]
    out = []
    for w in words:
        out.append(re.sub(r"[^a-z0-9]", "", w))
        if re.search(r"\d", w):
            break
    return "".join(out) or "gpu"


def this_device(device: str) -> tuple[str, str]:
    """(tag, description) of where a run on `device` ('cuda' or 'cpu') executes: the GPU's name, or the CPU's model,
    the cores this process may use (cpu-2core) and the load average (other work shares a CPU's cores)."""
    if device == "cuda":
        from pointpillars_trt.pipelines.cuda_runtime import device_name

        name = device_name()
        return device_tag(name), name
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return f"cpu-{cores}core", f"CPU: {model}, {cores} cores{load}"


def git_commit(given: str | None = None, root: Path = Path(__file__).resolve().parents[2]) -> str:
    """The commit measured: `given`, else git's HEAD of the package's checkout ('+ uncommitted changes' when its
    tracked files differ), else 'unknown' (a copied tree, as on a device machine: pass the commit there)."""
    if given:
        return given
    if not (root / "pyproject.toml").is_file():  # an installed package: no checkout of this project around it
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def parse(name: str) -> tuple[str, str, str] | None:
    """(date, device, what) of a record file's name, or None when it is not one."""
    m = NAME.match(name)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def same_kind(folder: Path, device: str, what: str) -> list[Path]:
    """The files in folder that record `what` on `device`, whatever their date."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (parse(p.name) or ("",))[1:] == (device, what))


def check_free(folder: str | os.PathLike, record: Record, force: bool) -> list[Path]:
    """The files of the earlier record of the same what on the same device in folder, which `write` replaces;
    a UserError naming the first unless force (checked before the measurement, so no run is lost to it)."""
    earlier = same_kind(Path(folder), record.device, record.what)
    if earlier and not force:
        raise UserError(f"{earlier[0]} records an earlier {record.what} measurement on {record.device}; pass "
                        f"--force to replace it with {record.stem}.md/.json, or give another --out folder")
    return earlier


def write(folder: str | os.PathLike, record: Record, payload: dict[str, Any], markdown: str, *,
          force: bool = False) -> list[Path]:
    """Write folder/<stem>.md (header + markdown) and .json ({'record': ..., **payload}), replacing the earlier
    record of the same what on the same device (check_free). Returns the paths written."""
    folder = Path(folder)
    earlier = check_free(folder, record, force)
    folder.mkdir(parents=True, exist_ok=True)
    for p in earlier:
        p.unlink()
    md, js = folder / f"{record.stem}.md", folder / f"{record.stem}.json"
    md.write_text(record.header() + "\n" + markdown.rstrip() + "\n")
    js.write_text(json.dumps({"record": asdict(record), **payload}, indent=1) + "\n")
    return [md, js]


def adopt(files: Iterable[str | os.PathLike], folder: str | os.PathLike) -> list[str]:
    """Copy record files (e.g. what came back from a device run) into folder, each replacing the earlier record of
    its what on its device there. Returns one line per change."""
    folder, lines = Path(folder), []
    files = [Path(f) for f in files]
    bad = [f.name for f in files if parse(f.name) is None]
    if bad:
        raise UserError(f"{bad[0]} is not named <date>_<device>_<what>.<ext> (bench/results/README.md)")
    for f in files:
        date, device, what = parse(f.name)  # type: ignore[misc]
        for old in same_kind(folder, device, what):
            if parse(old.name)[0] != date:  # type: ignore[index]
                old.unlink()
                lines.append(f"removed {old}")
        shutil.copyfile(f, folder / f.name)
        lines.append(f"{f.name} -> {folder}/")
    return lines
