"""Join the weight shards that bench/train_device.sh returns into one OpenPCDet-format checkpoint.

usage: python bench/join_weights.py OUT.pth weights_0.pth weights_1.pth
"""
from __future__ import annotations

import sys

import torch


def main(out: str, *shards: str) -> None:
    state, meta = {}, {}
    for s in shards:
        ck = torch.load(s, map_location="cpu", weights_only=True)
        state.update(ck.pop("model_state"))
        meta = ck
    torch.save({"model_state": state, **meta}, out)
    print(f"{out}: {len(state)} tensors, iteration {meta.get('it')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
