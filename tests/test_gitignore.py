"""Whatever the README's commands write into the clone (--out, --save, --bev) is ignored by git, so following the
README leaves `git status` clean."""
from __future__ import annotations

import re
import subprocess

from conftest import REPO

OUTPUT_OPTION = re.compile(r"--(?:out|save|bev)\s+(\S+)")


def test_readme_outputs_are_git_ignored():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    outputs = sorted({m for b in blocks for m in OUTPUT_OPTION.findall(b.replace("\\\n", " "))})
    assert {"my_model", "results", "sample_3d.png", "sample_bev.png", "runs/model.pth"} <= set(outputs), outputs
    r = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=REPO, capture_output=True, text=True)
    ignored = set(r.stdout.split())
    assert ignored == set(outputs), f"not ignored: {sorted(set(outputs) - ignored)}"
