"""Progress bars are drawn on a terminal only: `make-sample`, `eval` and `bench` write none into a pipe or a log
file (a redrawn bar there is a line of carriage returns per redraw), and still draw one on a pseudo-terminal."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from conftest import ALL_SCANS, KITTI, REPO
from test_eval_caps import _perfect_results


def _stderr(args, tty: bool) -> str:
    """The command's stderr, written to a pipe or to a pseudo-terminal."""
    cmd = [sys.executable, "-m", "pointpillars_trt", *map(str, args)]
    if not tty:
        r = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns (0 columns: no bar)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=600) == 0, b"".join(chunks)
    return b"".join(chunks).decode(errors="replace")


def _has_bar(text: str) -> bool:
    """tqdm's bar: 'desc:  50%|█████     | 1/2 [...]'."""
    return "%|" in text


def test_bars_only_on_a_terminal(tmp_path, onnx_dir):
    labels = _perfect_results(KITTI / "training/label_2", tmp_path / "results")
    runs = {"make-sample": lambda i: ["make-sample", "--out", tmp_path / f"sample{i}", "--frames", "2"],
            "eval": lambda i: ["eval", "--results", tmp_path / "results", "--labels", labels,
                               "--out", tmp_path / f"e{i}"]}
    for name, args in runs.items():
        assert not _has_bar(_stderr(args(0), tty=False)), name
        assert _has_bar(_stderr(args(1), tty=True)), name
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / ALL_SCANS[0].name).symlink_to(ALL_SCANS[0])
    err = _stderr(["bench", scans, "--onnx-dir", onnx_dir, "--iters", "3"], tty=False)
    assert not _has_bar(err), err
