"""The wheels that bring Ray Data to the device machine (Python 3.12, no network) within its 64 MiB carry: ray's cp312
manylinux2014 wheel repacked without what a Python-only Ray Data run never loads (DROP: 37 MB of 79, Java's 32 of
them), plus the dependencies that machine lacks (jsonschema, jsonschema-specifications, referencing, rpds-py, fsspec;
packaging in case). Written to the git-ignored .whl/.

    python bench/ray_wheels.py            # then carry .whl; on the device:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RAY = "ray==2.60.0"
MISSING_THERE = ["jsonschema", "jsonschema-specifications", "referencing", "rpds-py", "fsspec", "packaging"]
#: what a Python-only Ray Data run never loads: Java workers (32 MB), the dashboard's web client (include_dashboard=False),
#: RLlib, Serve, LLM (5 MB more)
DROP = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/serve/", "ray/llm/")


def download(target: Path, python: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", python, "--platform", "manylinux2014_x86_64", "--dest", str(target), RAY,
                    *MISSING_THERE], check=True)


def repack(wheel: Path, out: Path) -> None:
    """The wheel without DROP's folders, its RECORD rewritten to list what is left."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        record = next(n for n in src.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD"))
        rows = []
        for info in src.infolist():
            if info.filename.startswith(DROP) or info.filename == record:
                continue
            data = src.read(info)
            dst.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{info.filename},sha256={digest},{len(data)}")
        dst.writestr(record, "\n".join(rows + [f"{record},,"]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".whl")
    ap.add_argument("--python", default="3.12", help="the device's Python (default 3.12)")
    args = ap.parse_args()
    args.out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        download(Path(tmp), args.python)
        for w in sorted(Path(tmp).glob("*.whl")):
            if w.name.startswith("ray-"):
                repack(w, args.out / w.name)
            else:
                shutil.copy(w, args.out / w.name)
    total = 0
    for w in sorted(args.out.glob("*.whl")):
        total += w.stat().st_size
        print(f"{w.stat().st_size / 2**20:6.1f} MiB  {w.name}")
    print(f"{total / 2**20:6.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
