"""Move a trained model off the device machine, whose returned files are at most 16 MiB each: split a `train`
checkpoint's weights into shards there (the optimizer state stays behind), join them into one OpenPCDet-format
checkpoint here.

usage: python bench/weight_shards.py split CKPT OUT_DIR [N]      -> OUT_DIR/weights_0.pth ... weights_{N-1}.pth
       python bench/weight_shards.py join OUT.pth SHARD...
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

META = ("epoch", "it", "version", "train_args")


def split(ckpt: str, out_dir: str, n: str = "2") -> None:
    """Every n-th weight (sorted by name) into shard i, each with the checkpoint's metadata."""
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    keys = sorted(ck["model_state"])
    meta = {k: ck[k] for k in META if k in ck}
    for i in range(int(n)):
        torch.save({"model_state": {k: ck["model_state"][k] for k in keys[i::int(n)]}, **meta},
                   Path(out_dir) / f"weights_{i}.pth")
    print(f"{n} weight shards in {out_dir}: {len(keys)} tensors, iteration {ck.get('it')}")


def join(out: str, *shards: str) -> None:
    """The shards' weights in one checkpoint, with the (shared) metadata of the last shard."""
    state, meta = {}, {}
    for s in shards:
        ck = torch.load(s, map_location="cpu", weights_only=True)
        state.update(ck.pop("model_state"))
        meta = ck
    torch.save({"model_state": state, **meta}, out)
    print(f"{out}: {len(state)} tensors, iteration {meta.get('it')}")


if __name__ == "__main__":
    {"split": split, "join": join}[sys.argv[1]](*sys.argv[2:])
