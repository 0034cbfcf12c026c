"""The README works as written: its `python -m pointpillars_trt` commands run here from a scratch folder, and its
set-up and test commands are the ones CI (.ci/run) runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
BLOCKS = [b for b in re.findall(r"^```bash\n(.*?)^```", README, re.M | re.S)]
CI_ONLY = ("pip install ", "python -m pytest")  # run by .ci/run (installing, or the suite itself)


TRAIN_SMALL = {"--frames": "2", "--epochs": "1", "--batch-size": "2", "--val-frames": "0"}


def commands(block: str) -> list[str]:
    """A fenced block's commands, continuation lines joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]


def shrink_training(cmd: str) -> str:
    """`train` as written, with its sizes cut to seconds on a CPU (the real run is `PART=train bash bench/device.sh`, on a GPU)."""
    if " train " not in cmd:
        return cmd
    for flag, value in TRAIN_SMALL.items():
        cmd = re.sub(rf"{flag} \S+", f"{flag} {value}", cmd)
    return cmd + " --device cpu"


def test_ci_runs_the_readme_setup_and_test_commands():
    first = commands(BLOCKS[0])
    assert first[0].startswith("pip install ") and '.[export,viz,dev]' in first[0], first
    assert first[-1] == "python -m pytest -q"
    ci = (REPO / ".ci/run").read_text()
    assert "grep -m1 '^pip install ' README.md" in ci and "grep -m1 '^python -m pytest' README.md" in ci
    assert [c for c in README.splitlines() if c.startswith("pip install ")][0] == first[0]
    assert 'dev = ["pytest' in (REPO / "pyproject.toml").read_text()


def _open3d_renders() -> bool:
    from test_viz_open3d import _open3d_skip_reason

    return _open3d_skip_reason() is None


@pytest.mark.parametrize("n", [i for i, b in enumerate(BLOCKS) if "python -m pointpillars_trt" in b])
def test_readme_block_runs_as_written(n, tmp_path):
    """Each block as a bash script in a scratch folder that has the repository's data/ (a fresh clone's layout)."""
    script = [shrink_training(c) for c in commands(BLOCKS[n]) if not c.startswith(CI_ONLY)]
    if not _open3d_renders():  # the picture command, checked with --bev only where Open3D cannot render
        script = [re.sub(r" --save \S+", "", c) for c in script]
    (tmp_path / "data").symlink_to(REPO / "data")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PY": sys.executable}
    r = subprocess.run(["bash", "-c", 'set -euo pipefail; python() { "$PY" "$@"; }\n' + "\n".join(script)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{script}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    if any(" infer " in c and "--random-init" in c for c in script):
        assert "UNTRAINED" in r.stderr and "detections" in r.stdout
    for c in script:
        for out in re.findall(r"--(?:save|bev|out) (\S+)", c):
            assert (tmp_path / out).exists(), out
