"""Ctrl-C in `train` (SIGINT to the whole process group, as a terminal sends it, DataLoader worker included) saves
the last finished step, says how to continue, and exits with 130; off a terminal no progress bar is written."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import torch

from conftest import REPO
from test_cli_bad_input import cli

TINY = ("--frames", "4", "--batch-size", "1", "--device", "cpu", "--seed", "1")


def test_ctrl_c_saves_the_finished_step_and_exits_130(tmp_path):
    ckpt = tmp_path / "m.pth"
    proc = subprocess.Popen([sys.executable, "-m", "pointpillars_trt", "train", "--out", str(ckpt), "--epochs", "50",
                             "--workers", "1", "--save-every", "2", *TINY], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    for line in proc.stderr:  # off a terminal: one line per save, no bar
        seen.append(line)
        if line.startswith("iteration 2/200"):
            break
    assert seen and seen[-1].startswith("iteration 2/200"), "".join(seen)
    sent = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    err = "".join(seen) + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "%|" not in err, err  # no tqdm bar
    m = re.search(r"interrupted at iteration (\d+) of 200: saved .*m\.pth; continue with --resume", err)
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert m and ck["it"] == int(m.group(1)) >= 2 and ckpt.stat().st_mtime >= sent, err
    assert not ckpt.with_name("m.pth.tmp").exists()
    r = cli("train", "--out", ckpt, "--resume", ckpt, "--epochs", "50", "--workers", "0", "--time-limit", "1", *TINY)
    assert r.returncode == 0, r.stderr
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["it"] > ck["it"]
