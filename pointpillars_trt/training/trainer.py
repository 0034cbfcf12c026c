"""The training loop: batched forward of the train-mode networks, OpenPCDet's losses, AdamW with a one-cycle
learning rate, a tqdm bar with the losses (on a terminal; a line per save in a log), checkpoints in OpenPCDet's
format, resume, a time limit, and Ctrl-C that saves the last finished step before exiting."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointpillars_trt.log import info, on_terminal, progress
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.errors import UserError
from pointpillars_trt.model.networks import PointPillarsNets, load_checkpoint
from pointpillars_trt.training.data import TrainingFrames, collate, make_mix
from pointpillars_trt.training.gt_sampling import SamplingOptions
from pointpillars_trt.training.interrupt import StepGuard
from pointpillars_trt.training.losses import detection_losses


@dataclass
class TrainOptions:
    """What `train` was asked to do (stored in the checkpoint as 'train_args')."""

    out: str
    frames: int = 3712
    epochs: int = 10
    batch_size: int = 4
    seed: int = 0
    workers: int = 2
    device: str = "cpu"
    resume: str | None = None
    save_every: int = 500  # iterations
    time_limit: float = 0.0  # seconds; 0 = none
    cache_dir: str | None = None
    log: str | None = None  # a plain-text log of the losses (one line per log_every iterations)
    log_every: int = 20
    lr: float | None = None  # overrides cfg.lr
    init: str | None = None  # start from this checkpoint's weights (fresh optimizer and schedule)
    gt_sampling: bool = True
    db_frames: int = 400  # generated frames whose objects fill the ground-truth database
    real_root: str | None = None  # KITTI root of the real training frames
    real_ids: list[str] | None = None  # the real frames that train the model (recorded in the checkpoint)
    real_fraction: float = 0.2  # share of training items that are a real frame
    real_paste_share: float = 0.25  # chance that a pasted object comes from a real frame (SamplingOptions.real_share)
    synthetic_car_top: float = 0.0  # metres added to the top of generated cars' label boxes (training/labels.py)


def scatter_to_canvas(pillar_features: torch.Tensor, coords: torch.Tensor, batch_size: int,
                      cfg: PointPillarsConfig) -> torch.Tensor:
    """OpenPCDet's PointPillarScatter for a batch: [P, C] + coords (b, z, y, x) -> [B, C, ny, nx]."""
    nx, ny, _ = cfg.grid_size
    c = pillar_features.shape[1]
    flat = (coords[:, 0] * ny + coords[:, 2]) * nx + coords[:, 3]
    canvas = pillar_features.new_zeros(batch_size * ny * nx, c)
    canvas = canvas.index_put((flat,), pillar_features)
    return canvas.view(batch_size, ny, nx, c).permute(0, 3, 1, 2).contiguous()


def forward(nets: PointPillarsNets, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Head outputs per anchor: cls [B, A, C], box [B, A, 7], dir [B, A, bins] (anchor order of make_anchors)."""
    cfg = nets.cfg
    b = batch["labels"].shape[0]
    feats = nets.vfe(batch["features"])  # padded slots are zero (the voxelizer's contract)
    cls, box, dirs = nets.rpn(scatter_to_canvas(feats, batch["coords"], b, cfg))
    return cls.reshape(b, -1, cfg.num_classes), box.reshape(b, -1, 7), dirs.reshape(b, -1, cfg.num_dir_bins)


def init_head(nets: PointPillarsNets, prior: float = 0.01) -> None:
    """OpenPCDet's AnchorHeadSingle.init_weights: class bias at the focal-loss prior, tiny box weights."""
    head = nets.dense_head
    torch.nn.init.constant_(head.conv_cls.bias, -float(np.log((1 - prior) / prior)))
    torch.nn.init.normal_(head.conv_box.weight, mean=0.0, std=0.001)


def model_state(nets: PointPillarsNets) -> dict[str, torch.Tensor]:
    """The state_dict under OpenPCDet's names only (without the rpn alias), on the CPU."""
    return {k: v.detach().cpu() for k, v in nets.state_dict().items() if not k.startswith("rpn.")}


def save_checkpoint(path: Path, nets: PointPillarsNets, optimizer: torch.optim.Optimizer, epoch: int, it: int,
                    opts: TrainOptions) -> None:
    """OpenPCDet's checkpoint layout, written atomically so a killed run never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    state = {**model_state(nets), "global_step": torch.tensor([it], dtype=torch.int64)}  # as OpenPCDet's buffer
    torch.save({"model_state": state, "optimizer_state": optimizer.state_dict(), "epoch": epoch, "it": it,
                "version": "pointpillars_trt-train", "train_args": {k: v for k, v in asdict(opts).items()}}, tmp)
    tmp.replace(path)


def make_optimizer(nets: PointPillarsNets, cfg: PointPillarsConfig, lr: float, total: int,
                   resume_state: dict | None, it0: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW (OpenPCDet's adam_onecycle: Adam, betas (0.9, 0.99), decoupled weight decay) + one-cycle LR and momentum."""
    params = [p for p in nets.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr / cfg.div_factor, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    if resume_state is not None:
        opt.load_state_dict(resume_state)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total, pct_start=cfg.pct_start, div_factor=cfg.div_factor,
        final_div_factor=1e4, base_momentum=cfg.moms[1], max_momentum=cfg.moms[0], anneal_strategy="cos",
        last_epoch=it0 - 1 if resume_state is not None else -1)
    return opt, sched


def _resume(opts: TrainOptions, cfg: PointPillarsConfig) -> tuple[PointPillarsNets, dict | None, int]:
    """Networks in train mode, the optimizer state and the iteration to continue from."""
    if not opts.resume:
        if opts.init:
            return load_checkpoint(opts.init, cfg).train(), None, 0
        nets = PointPillarsNets(cfg)
        init_head(nets)
        return nets.train(), None, 0
    nets = load_checkpoint(opts.resume, cfg)  # refuses foreign layouts with a UserError
    ck = torch.load(opts.resume, map_location="cpu", weights_only=True)
    if "optimizer_state" not in ck or "it" not in ck:
        raise UserError(f"--resume {opts.resume}: no optimizer_state/it (not a checkpoint written by `train`)")
    return nets.train(), ck["optimizer_state"], int(ck["it"])


def _batches(ds: TrainingFrames, opts: TrainOptions, epoch: int, skip: int, device: torch.device):
    """A DataLoader over epoch `epoch`'s shuffled frames (keys epoch*n + i), leaving out the first `skip` batches."""
    perm = np.random.default_rng([opts.seed, epoch]).permutation(ds.n)
    per_epoch = ds.n // opts.batch_size
    keys = (epoch * ds.n + perm[: per_epoch * opts.batch_size])[skip * opts.batch_size:].tolist()
    return torch.utils.data.DataLoader(ds, batch_size=opts.batch_size, sampler=keys, collate_fn=collate,
                                       num_workers=opts.workers, pin_memory=device.type == "cuda",
                                       persistent_workers=False, prefetch_factor=2 if opts.workers else None)


def _step(nets: PointPillarsNets, optimizer: torch.optim.Optimizer, sched: Any, batch: dict[str, torch.Tensor],
          device: torch.device, cfg: PointPillarsConfig) -> dict[str, float]:
    """One optimisation step on a batch; returns its losses and learning rate."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    cls, box, dirs = forward(nets, batch)
    losses = detection_losses(cls, box, dirs, batch["labels"], batch["pos_batch"], batch["pos_idx"],
                              batch["box_targets"], batch["dir_targets"], cfg)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(nets.parameters(), cfg.grad_norm_clip)
    optimizer.step()
    sched.step()
    vals = {k: float(v.detach()) for k, v in losses.items()}
    vals["lr"] = optimizer.param_groups[0]["lr"]
    return vals


def train(opts: TrainOptions, cfg: PointPillarsConfig) -> dict:
    """Train (or continue training) and write opts.out; returns a summary (iterations, last losses, seconds)."""

    device = torch.device(opts.device)
    torch.manual_seed(opts.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    mix = make_mix(cfg, opts.seed, opts.frames, opts.real_root, opts.real_ids or [], opts.real_fraction, opts.gt_sampling,
                   opts.db_frames, opts.cache_dir, opts.workers, SamplingOptions(real_share=opts.real_paste_share),
                   opts.synthetic_car_top)
    ds = TrainingFrames(cfg, opts.frames, opts.seed, train=True, cache_dir=opts.cache_dir, mix=mix)
    ds[0]  # compile the Numba voxelizer once here; forked workers inherit it
    per_epoch = opts.frames // opts.batch_size
    total = per_epoch * opts.epochs
    nets, opt_state, it0 = _resume(opts, cfg)
    if it0 >= total:
        raise UserError(f"--resume: the checkpoint is at iteration {it0}, the schedule has {total}; raise --epochs")
    nets.to(device)
    optimizer, sched = make_optimizer(nets, cfg, opts.lr or cfg.lr, total, opt_state, it0)
    out = Path(opts.out)
    log = open(opts.log, "a") if opts.log else None
    t0 = time.time()
    it = it0
    hist: list[dict] = []
    bar = progress(total=total, initial=it0, unit="it", desc="train", dynamic_ncols=True)
    stopped = interrupted = False
    try:
        with StepGuard() as guard:
            for epoch in range(it0 // per_epoch, opts.epochs):
                skip = it0 - epoch * per_epoch if epoch == it0 // per_epoch else 0
                for batch in _batches(ds, opts, epoch, skip, device):
                    with guard.step():  # a Ctrl-C in here waits for the step to end (training/interrupt.py)
                        vals = _step(nets, optimizer, sched, batch, device, cfg)
                        it += 1
                    hist.append(vals)
                    bar.set_postfix(loss=f"{vals['loss']:.3f}", cls=f"{vals['cls']:.3f}", loc=f"{vals['loc']:.3f}",
                                    dir=f"{vals['dir']:.3f}", lr=f"{vals['lr']:.2e}", refresh=False)
                    bar.update(1)
                    if log and (it % opts.log_every == 0 or it == total):
                        log.write(json.dumps({"it": it, "epoch": epoch, "s": round(time.time() - t0, 1),
                                              **{k: round(v, 5) for k, v in vals.items()}}) + "\n")
                        log.flush()
                    if it % opts.save_every == 0:
                        save_checkpoint(out, nets, optimizer, epoch, it, opts)
                        if not on_terminal():  # no bar in a log: a line per save instead
                            info(f"iteration {it}/{total}: loss {vals['loss']:.4f}, saved {out}")
                    if opts.time_limit and time.time() - t0 > opts.time_limit and it < total:
                        stopped = True
                        break
                if stopped:
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if log:
            log.close()
    save_checkpoint(out, nets, optimizer, it // per_epoch, it, opts)
    if interrupted:  # saved; the command exits with 130 as for any Ctrl-C
        info(f"interrupted at iteration {it} of {total}: saved {out}; continue with --resume {out} --out {out} "
             "(same other options)")
        raise KeyboardInterrupt
    secs = time.time() - t0
    return {"it": it, "total": total, "stopped_early": stopped, "seconds": secs, "frames_per_s": (it - it0) * opts.batch_size / secs,
            "losses": hist}
