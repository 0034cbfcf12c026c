"""`train` end to end on the CPU: a tiny run writes an OpenPCDet-format checkpoint that `infer` loads unchanged,
`--resume` continues it, and bad arguments are one-line errors."""
from __future__ import annotations

from pathlib import Path

import torch

from test_cli_bad_input import assert_one_line_error, cli

REPO = Path(__file__).resolve().parents[1]
SCAN = REPO / "data/sample/training/velodyne/000000.bin"
SHARED_KEYS = REPO.parent / "shared/checkpoints/KEYS.txt"
TINY = ("--frames", "4", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--seed", "1")


def test_train_tiny_run_infer_and_resume(tmp_path):
    ckpt = tmp_path / "model.pth"
    log = tmp_path / "train.jsonl"
    r = cli("train", "--out", ckpt, "--epochs", "1", "--log", log, *TINY)
    assert r.returncode == 0, r.stderr
    assert "iteration 2 of 2" in r.stdout
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert ck["it"] == 2 and ck["epoch"] == 1 and "optimizer_state" in ck and int(ck["model_state"]["global_step"]) == 2
    assert not any(k.startswith("rpn.") for k in ck["model_state"])
    if SHARED_KEYS.is_file():  # exactly the keys of OpenPCDet's pointpillar checkpoints
        want = {ln.split()[0] for ln in SHARED_KEYS.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
        assert set(ck["model_state"]) == want, sorted(want ^ set(ck["model_state"]))[:5]
    assert log.read_text().count('"it"') == 1  # the last iteration is always logged

    # every command loads it unchanged
    r = cli("infer", SCAN, "--checkpoint", ckpt, "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr

    # an existing --out is not overwritten without --force
    assert_one_line_error(cli("train", "--out", ckpt, "--epochs", "1", *TINY), "--force")

    # --resume continues the iteration counter and the weights
    r = cli("train", "--out", ckpt, "--resume", ckpt, "--epochs", "2", *TINY)
    assert r.returncode == 0, r.stderr
    assert "iteration 4 of 4" in r.stdout
    ck2 = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert ck2["it"] == 4 and ck2["epoch"] == 2
    w = "backbone_2d.blocks.0.1.weight"
    assert not torch.equal(ck["model_state"][w], ck2["model_state"][w])
    # nothing left to do at the end of the schedule
    assert_one_line_error(cli("train", "--out", ckpt, "--resume", ckpt, "--epochs", "2", *TINY), "raise --epochs")


def test_train_help_and_bad_arguments(tmp_path):
    r = cli("train", "--help")
    assert r.returncode == 0
    for word in ("--frames", "--epochs", "--batch-size", "--lr", "--out", "--resume", "--seed", "--val-frames",
                 "--workers", "--device", "make-sample"):
        assert word in r.stdout, word
    out = tmp_path / "m.pth"
    assert_one_line_error(cli("train", "--out", out, "--frames", "0"), "--frames")
    assert_one_line_error(cli("train", "--out", out, "--frames", "2", "--batch-size", "4"), "--batch-size")
    assert_one_line_error(cli("train", "--out", out, "--lr", "-1"), "--lr")
    assert_one_line_error(cli("train", "--out", out, "--resume", tmp_path / "nope.pth"), "--resume")
    (tmp_path / "a_file").write_text("x")
    assert_one_line_error(cli("train", "--out", tmp_path / "a_file" / "m.pth"), "is not a directory")
    assert_one_line_error(cli("train", "--out", tmp_path, "--force"), "is a directory")
    assert_one_line_error(cli("train", "--out", out, "--seed", "1000003", "--device", "cpu"), "validation seed")
    not_ours = tmp_path / "foreign.pth"
    torch.save({"weights": 1}, not_ours)
    assert_one_line_error(cli("train", "--out", out, "--resume", not_ours, "--device", "cpu"), "checkpoint")
    assert not out.exists()


def test_train_from_init_on_real_frames_records_them(tmp_path):
    """--init starts from given weights (here the shared random-init checkpoint), --real/--real-split adds the split's
    frames to training and the database; the checkpoint names them."""
    init = REPO.parent / "shared/checkpoints/pointpillar_kitti_random_seed0.pth"
    split = REPO / "data/splits/kitti_train.txt"
    ckpt = tmp_path / "ft.pth"
    r = cli("train", "--out", ckpt, "--epochs", "1", "--init", init, "--real", REPO.parent / "shared/kitti",
            "--real-split", split, "--real-fraction", "0.5", "--db-frames", "2", "--frames", "2", "--batch-size", "1",
            "--workers", "0", "--device", "cpu", "--seed", "1", "--real-paste-share", "0.5", "--synthetic-car-top", "0.04")
    assert r.returncode == 0, r.stderr
    assert "real frames 000008 000134" in r.stderr and "gt_sampling on" in r.stderr
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert ck["train_args"]["real_ids"] == ["000008", "000134"] and ck["train_args"]["init"] == str(init)
    assert ck["train_args"]["real_paste_share"] == 0.5 and ck["train_args"]["synthetic_car_top"] == 0.04
    start = torch.load(init, map_location="cpu", weights_only=True)["model_state"]
    w = "dense_head.conv_cls.bias"  # the random-init head is not the focal-prior head a fresh run starts with
    assert torch.allclose(ck["model_state"][w], start[w], atol=0.05) and not torch.equal(ck["model_state"][w], start[w])


def test_train_real_and_init_bad_arguments(tmp_path):
    out = tmp_path / "m.pth"
    kitti = REPO.parent / "shared/kitti"
    split = REPO / "data/splits/kitti_train.txt"
    assert_one_line_error(cli("train", "--out", out, "--real", kitti), "--real and --real-split go together")
    assert_one_line_error(cli("train", "--out", out, "--real", tmp_path, "--real-split", split), "KITTI's layout")
    assert_one_line_error(cli("train", "--out", out, "--real-fraction", "2"), "--real-fraction")
    assert_one_line_error(cli("train", "--out", out, "--real-paste-share", "-0.1"), "--real-paste-share")
    assert_one_line_error(cli("train", "--out", out, "--synthetic-car-top", "1"), "--synthetic-car-top")
    assert_one_line_error(cli("train", "--out", out, "--init", tmp_path / "nope.pth"), "--init")
    ck = tmp_path / "c.pth"
    ck.write_bytes(b"")
    assert_one_line_error(cli("train", "--out", out, "--init", ck, "--resume", ck), "not both")
    bad_split = tmp_path / "ids.txt"
    bad_split.write_text("999999\n")
    assert_one_line_error(cli("train", "--out", out, "--real", kitti, "--real-split", bad_split, "--device", "cpu",
                              "--frames", "2", "--batch-size", "1", "--workers", "0"), "999999")
    assert not out.exists()
