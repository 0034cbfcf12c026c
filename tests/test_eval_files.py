"""evaluate_dirs, the real KITTI label file, file errors and the `eval` subcommand."""
import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from pointpillars_trt.errors import UserError
from pointpillars_trt.evaluation import EvalWarning, evaluate, evaluate_dirs, format_table, save_pr_curves
from pointpillars_trt.cli import eval as eval_cli
from pointpillars_trt.evaluation.synthetic import noisy_detections, random_labels
from pointpillars_trt.io.kitti import read_labels, write_labels

SHARED = Path(__file__).resolve().parents[2] / "shared"
LABEL_134 = SHARED / "kitti" / "training" / "label_2" / "000134.txt"
CLASSES = ("Car", "Pedestrian", "Cyclist")


def with_scores(objs, seed=0):
    out = objs.select(np.ones(len(objs), bool))
    out.score = np.random.default_rng(seed).uniform(0.5, 1.0, len(objs))
    return out


@pytest.fixture
def dirs(tmp_path):
    """30 synthetic frames: labels/ and results/ (frames 000005 and 000007 have no result file)."""
    rng = np.random.default_rng(3)
    labels, results = tmp_path / "labels", tmp_path / "results"
    labels.mkdir()
    results.mkdir()
    for i in range(30):
        gt = random_labels(rng, int(rng.integers(1, 12)))
        write_labels(labels / f"{i:06d}.txt", gt)
        if i not in (5, 7):
            write_labels(results / f"{i:06d}.txt", noisy_detections(rng, gt))
    return labels, results


@pytest.mark.skipif(not LABEL_134.exists(), reason="../shared/kitti is not present")
def test_real_label_file_against_itself():
    gt = read_labels(LABEL_134)
    present = sorted({n for n in gt.name if n in CLASSES})
    assert present == ["Car", "Cyclist", "Pedestrian"]
    # The devkit samples one score threshold per counted object when there are fewer than 41 (000134
    # has a single easy Car), so use the frame 41 times to get a full PR curve: then 100 everywhere.
    res = evaluate([gt] * 41, [with_scores(gt)] * 41)
    for cls in present:
        c = res.classes.index(cls)
        assert res.num_gt[c].min() > 0
        np.testing.assert_allclose(res.ap[:, :, c], 100.0)
    # on its own, the protocol's sampling caps it: 1 easy Car -> R11 100/11, R40 0
    single = evaluate([gt], [with_scores(gt)])
    assert single.get("3d", "Car", "easy", "R11") == pytest.approx(100 / 11)
    assert single.get("3d", "Car", "easy", "R40") == 0.0


@pytest.mark.skipif(not LABEL_134.exists(), reason="../shared/kitti is not present")
def test_evaluate_dirs_on_the_real_label_file(tmp_path):
    write_labels(tmp_path / "000134.txt", with_scores(read_labels(LABEL_134)))
    res = evaluate_dirs(tmp_path, LABEL_134.parent, ids=["000134"], progress=False)
    assert res.num_frames == 1
    # 4 easy pedestrians -> 4 sampled thresholds with precision 1 (samples 0..3):
    # R40 = samples 1..3 = 3/40, R11 = sample 0 only = 1/11
    assert res.get("bbox", "Pedestrian", "easy", "R40") == pytest.approx(7.5)
    assert res.get("bbox", "Pedestrian", "easy", "R11") == pytest.approx(100 / 11)


def test_evaluate_dirs_warns_once_about_missing_results(dirs):
    labels, results = dirs
    with pytest.warns(EvalWarning) as rec:
        res = evaluate_dirs(results, labels, progress=False)
    msgs = [str(w.message) for w in rec if "missing" in str(w.message)]
    assert len(msgs) == 1
    assert msgs[0].startswith("2 of 30 result files missing") and "000005, 000007" in msgs[0]
    assert res.num_frames == 30
    # missing files count as frames without detections
    gts = [read_labels(labels / f"{i:06d}.txt") for i in range(30)]
    dts = [read_labels(results / f"{i:06d}.txt") if i not in (5, 7) else read_labels(results / "000000.txt").select(
        np.zeros(len(read_labels(results / "000000.txt")), bool)) for i in range(30)]
    np.testing.assert_allclose(res.ap, evaluate(gts, dts).ap, equal_nan=True)


def test_missing_results_listing_is_capped(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (tmp_path / "results").mkdir()
    for i in range(25):
        (labels / f"{i:06d}.txt").write_text("Car 0.00 0 0.1 100 100 200 160 1.5 1.6 3.9 0 1.6 10 0.1\n")
    with pytest.warns(EvalWarning, match=r"25 of 25 .*000009, \.\.\. \(\+15 more\)"):
        evaluate_dirs(tmp_path / "results", labels, progress=False)


def test_unknown_class_names_noted_once(dirs):
    labels, results = dirs
    p = results / "000000.txt"
    p.write_text(p.read_text() + "Spaceship 0 0 0.1 10 10 100 100 1 1 1 0 1 10 0 0.9\n"
                 + "Spaceship 0 0 0.1 10 10 100 100 1 1 1 5 1 10 0 0.8\nBlob 0 0 0 1 1 50 50 1 1 1 0 1 9 0 0.5\n")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        evaluate_dirs(results, labels, progress=False)
    notes = [str(w.message) for w in rec if "unknown class" in str(w.message)]
    assert notes == ["ignoring unknown class names in results: Blob (1), Spaceship (2)"]


def test_malformed_label_line_names_file_and_line(dirs):
    labels, results = dirs
    bad = labels / "000003.txt"
    lines = bad.read_text().splitlines()
    lines.insert(1, "Car 0.00 0 oops 1 2 3 4 5 6 7 8 9 10 11")
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"000003\.txt:2:"):
        evaluate_dirs(results, labels, progress=False)


def test_result_without_scores_and_bad_dirs(dirs, tmp_path):
    labels, results = dirs
    (results / "000001.txt").write_text("Car 0.00 0 0.1 100 100 200 160 1.5 1.6 3.9 0 1.6 10 0.1\n")
    with pytest.raises(UserError, match="score"):
        evaluate_dirs(results, labels, progress=False)
    with pytest.raises(UserError, match="not found"):
        evaluate_dirs(tmp_path / "nope", labels, progress=False)
    with pytest.raises(UserError, match="label file not found"):
        evaluate_dirs(results, labels, ids=["999999"], progress=False)


def test_table_json_and_plots(dirs, tmp_path):
    labels, results = dirs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvalWarning)
        res = evaluate_dirs(results, labels, progress=False)
    table = format_table(res)
    assert "Car AP@0.70, 0.70, 0.70:" in table and "Car AP_R40@0.70, 0.50, 0.50:  (loose)" in table
    assert "3d   AP:" in table and "aos  AP:" in table
    js = json.loads(json.dumps(res.to_json()))  # strictly JSON-serialisable
    assert js["ap"]["strict"]["Car"]["3d"]["R40"][1] == pytest.approx(res.get("3d", "Car"), abs=1e-4)
    paths = save_pr_curves(res, tmp_path / "plots")
    assert len(paths) == 12 and all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def make_parser():
    parser = argparse.ArgumentParser(prog="pointpillars-trt")
    sub = parser.add_subparsers(dest="command")
    p = eval_cli.add_parser(sub)
    p.add_argument("--data")  # other modes can extend the same parser
    return parser


def test_cli_writes_outputs_and_refuses_to_overwrite(dirs, tmp_path, capsys):
    labels, results = dirs
    ids = tmp_path / "val.txt"
    ids.write_text("000000\n000001\n\n000002\n000005\n")
    out = tmp_path / "out"
    argv = ["eval", "--results", str(results), "--labels", str(labels), "--ids", str(ids), "--out", str(out)]
    args = make_parser().parse_args(argv)
    assert args.func is eval_cli.run
    args.progress = False
    assert eval_cli.run(args) == 0
    cap = capsys.readouterr()
    assert "Car AP@0.70" in cap.out
    assert "warning: 1 of 4 result files missing" in cap.err
    assert json.loads((out / "eval.json").read_text())["num_frames"] == 4
    assert (out / "table.txt").read_text().startswith("KITTI object evaluation: 4 frames")
    assert len(list((out / "pr_curves").glob("*.png"))) == 12
    with pytest.raises(UserError, match="--force"):
        eval_cli.run(args)
    args = make_parser().parse_args(argv + ["--force"])
    args.progress = False
    assert eval_cli.run(args) == 0


def test_cli_argument_errors(dirs, tmp_path):
    labels, _ = dirs
    args = make_parser().parse_args(["eval", "--labels", str(labels)])
    with pytest.raises(UserError, match="--results"):
        eval_cli.run(args)
    args = make_parser().parse_args(["eval", "--labels", str(labels), "--results", str(labels),
                                     "--ids", str(tmp_path / "missing.txt")])
    with pytest.raises(UserError, match="ids file not found"):
        eval_cli.run(args)


def test_eval_cli_protocol_option_names_the_protocol(tmp_path, capsys):
    """A false positive inside a DontCare region: `eval` (default openpcdet) counts it for BEV/3D, --protocol devkit not."""
    from test_eval_protocol import DONTCARE, FAR_FP, car_frames

    gt, dt = car_frames(extra_gt=[DONTCARE], extra_dt=[dict(FAR_FP, bbox=(600, 100, 700, 160))], extra_score=[0.99])
    labels, results = tmp_path / "labels", tmp_path / "results"
    labels.mkdir()
    results.mkdir()
    for i, (g, d) in enumerate(zip(gt, dt)):
        write_labels(labels / f"{i:06d}.txt", g)
        write_labels(results / f"{i:06d}.txt", d)
    from pointpillars_trt.cli import main

    car3d = {}
    for proto in ("openpcdet", "devkit", None):
        out = tmp_path / f"out_{proto}"
        argv = ["eval", "--results", str(results), "--labels", str(labels), "--out", str(out)]
        assert main(argv + (["--protocol", proto] if proto else [])) == 0
        js = json.loads((out / "eval.json").read_text())
        assert js["protocol"] == (proto or "openpcdet")
        assert f"protocol {proto or 'openpcdet'}" in (out / "table.txt").read_text().splitlines()[0]
        car3d[proto] = (js["ap"]["strict"]["Car"]["3d"]["R40"][0], js["ap"]["strict"]["Car"]["bbox"]["R40"][0])
    assert car3d["devkit"] == (100.0, 100.0)
    assert car3d["openpcdet"] == car3d[None] == (round(100 * 50 / 51, 4), 100.0)
    with pytest.raises(SystemExit):
        main(["eval", "--results", str(results), "--labels", str(labels), "--protocol", "cpp"])
    capsys.readouterr()
