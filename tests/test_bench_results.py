"""bench/results is a curated set of records (bench/results/README.md): each file is named <date>_<device>_<what>,
opens with its command, commit, device and date, and is cited by README.md or bench/results/README.md; every
bench/results path the repository cites exists."""
from __future__ import annotations

import json
import re
import subprocess

from conftest import REPO
from pointpillars_trt.pipelines.bench_records import parse

RESULTS = REPO / "bench" / "results"
FIELDS = ("command", "commit", "device", "date")


def _records() -> list:
    return sorted(p for p in RESULTS.iterdir() if p.name != "README.md")


def test_every_record_is_named_dated_and_cited() -> None:
    cited = (REPO / "README.md").read_text() + (RESULTS / "README.md").read_text()
    for p in _records():
        parts = parse(p.name)
        assert parts, f"{p.name}: not named <date>_<device>_<what>.<ext>"
        date, device, what = parts
        assert f"{date}_{device}_{what}" in cited, f"{p.name} is cited by neither README"
        if p.suffix in (".md", ".log"):
            head = p.read_text().split("\n\n```")[0][:3000]
            for field in FIELDS:
                assert re.search(rf"^- {field}: \S", head, re.M), f"{p.name}: no '- {field}:' line at the top"
            assert f"- date: {date}" in head, f"{p.name}: its date line differs from its name"
        elif p.suffix in (".json", ".jsonl"):
            first = p.read_text().splitlines()[0] if p.suffix == ".jsonl" else p.read_text()
            record = json.loads(first)["record"]
            assert set(FIELDS) <= set(record) and record["date"] == date and record["device"] == device, p.name
        else:
            assert p.suffix == ".png" and (RESULTS / f"{date}_{device}_{what}.md").exists(), p.name


def test_cited_results_exist() -> None:
    """Every bench/results/<file> named in a tracked text file is there (a renamed or replaced record is cited by
    its new name)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    missing = set()
    for f in files:
        path = REPO / f
        if path.suffix in (".png", ".pth", ".bin", ".onnx") or not path.is_file():
            continue
        for ref in re.findall(r"bench/results/([\w.-]+\.[a-z]+)", path.read_text(errors="replace")):
            if not (RESULTS / ref).exists():
                missing.add(f"{f}: bench/results/{ref}")
    assert not missing, sorted(missing)
