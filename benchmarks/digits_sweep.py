"""Fast exploration of the moving-digits transfer recipe, in memory.

``digits_transfer.py`` runs the real pipeline (decoding, datasets, trainer, multi-view test) and is
what results are claimed with. This script is for choosing its settings: it decodes the set once into
a uint8 tensor and runs pre-training, fine-tuning, a linear probe and activation statistics with
maest's own model, loss, parameter groups, lr schedule, crops and weight loading in a plain loop,
so nothing is decoded per step. It tests on one centre view (all 16 frames at stride 2) per video.

    python benchmarks/digits_sweep.py data --root runs/sweep
    python benchmarks/digits_sweep.py pretrain --root runs/sweep --epochs 100 --lr 3e-4 --tag lr3e-4
    python benchmarks/digits_sweep.py pretrain --root runs/sweep --epochs 50 --init runs/sweep/lr3e-4_ep100.pt --tag m
    python benchmarks/digits_sweep.py finetune --root runs/sweep --init runs/sweep/lr3e-4_ep100.pt --lr 3e-3
    python benchmarks/digits_sweep.py finetune --root runs/sweep --lr 3e-3        # from scratch
    python benchmarks/digits_sweep.py probe --root runs/sweep --init runs/sweep/lr3e-4_ep100.pt
    python benchmarks/digits_sweep.py stats --root runs/sweep --init runs/sweep/lr3e-4_ep100.pt

One pre-training epoch is one clip per video (2100 clips); at one torch thread on the 2-core machine
of 2026-11-25 an epoch took 10-13 s and a 30-epoch fine-tune on 120 videos about 40 s.
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from digits_transfer import GEOMETRY, write_data

from maest.data.decode import open_video, read_frames
from maest.data.transforms import normalize, random_resized_crop
from maest.losses import mae_target, reconstruction_loss
from maest.models import create_model
from maest.models.vit import load_pretrained
from maest.optim import param_groups_layer_decay, param_groups_weight_decay
from maest.schedule import lr_at

GEO = {k: int(v) for k, v in (g.split("=") for g in GEOMETRY)}
DECODER = {"decoder_embed_dim": 64, "decoder_depth": 2, "decoder_num_heads": 4}
NUM_CLASSES, FRAMES, STRIDE = 10, 8, 2


def load_split(root: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, T, C, H, W) frames and (N,) labels of ``name``.csv, decoded once and cached."""
    cache = root / f"{name}.decoded.pt"
    if cache.exists():
        d = torch.load(cache, weights_only=True)
        return d["x"], d["y"]
    xs, ys = [], []
    for line in (root / f"{name}.csv").read_text().splitlines():
        rel, label = line.split()
        video = open_video(root / rel)
        xs.append(read_frames(video, range(video.num_frames)))
        ys.append(int(label))
    x, y = torch.stack(xs), torch.tensor(ys)
    torch.save({"x": x, "y": y}, cache)
    return x, y


def train_clips(videos: torch.Tensor, min_scale: float = 0.5) -> torch.Tensor:
    """A random 8-frame window at stride 2 and one random resized crop per video: (B, C, T, H, W)."""
    out = []
    for v in videos:
        start = int(torch.randint(0, v.shape[0] - STRIDE * (FRAMES - 1), ()).item())
        clip = random_resized_crop(v[start:start + STRIDE * FRAMES:STRIDE], GEO["img_size"], (min_scale, 1.0))
        out.append(normalize(clip))
    return torch.stack(out)


def centre_clips(videos: torch.Tensor) -> torch.Tensor:
    return torch.stack([normalize(v[0:STRIDE * FRAMES:STRIDE]) for v in videos])


def width(args: argparse.Namespace) -> dict[str, int]:
    return {"embed_dim": args.embed_dim, "num_heads": args.num_heads, "depth": args.depth}


def set_lrs(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def new_mae(**overrides: int) -> torch.nn.Module:
    return create_model("mae_vit_tiny_test", **{**GEO, **DECODER, **overrides})


def classifier(init: str | None, drop_path: float = 0.1, **overrides: int) -> torch.nn.Module:
    model = create_model("vit_tiny_test", **{**GEO, **overrides}, num_classes=NUM_CLASSES, drop_path_rate=drop_path,
                         dropout=0.0)
    if init:
        load_pretrained(model, torch.load(init, weights_only=True))
    return model


def pretrain(args: argparse.Namespace) -> None:
    x, _ = load_split(args.root, "train")
    torch.manual_seed(args.seed)
    model = new_mae(**width(args), decoder_embed_dim=args.decoder_dim, decoder_depth=args.decoder_depth)
    if args.init:  # continue from earlier weights with a fresh optimizer and schedule
        model.load_state_dict(torch.load(args.init, weights_only=True))
    opt = torch.optim.AdamW(param_groups_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))
    steps = len(x) // args.batch_size
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        perm, total = torch.randperm(len(x)), 0.0
        for i in range(steps):
            set_lrs(opt, lr_at(epoch + i / steps, args.lr, 0.0, args.warmup_epochs, args.epochs))
            clips = train_clips(x[perm[i * args.batch_size:(i + 1) * args.batch_size]])
            out = model(clips, mask_ratio=args.mask_ratio)
            loss = reconstruction_loss(out.pred, mae_target(clips, *model.target_spec, args.norm_pix), out.mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item()
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            print(f"epoch {epoch + 1}: loss {total / steps:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        if (epoch + 1) % args.save_every == 0 or epoch + 1 == args.epochs:
            torch.save(model.state_dict(), args.root / f"{args.tag}_ep{epoch + 1}.pt")


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum((model(centre_clips(x[i:i + 100])).argmax(-1) == y[i:i + 100]).sum().item()
               for i in range(0, len(x), 100))
    return 100.0 * hits / len(x)


def finetune(args: argparse.Namespace) -> None:
    x, y = load_split(args.root, "train")
    xt, yt = load_split(args.root, "val")
    x, y = x[:args.labelled], y[:args.labelled]
    torch.manual_seed(args.seed)
    model = classifier(args.init, **width(args))
    groups = param_groups_layer_decay(model, 0.05, args.layer_decay, head_lr_scale=args.head_lr_scale)
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999))
    steps, curve = max(1, len(x) // args.batch_size), []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(steps):
            set_lrs(opt, lr_at(epoch + i / steps, args.lr, 1e-6, args.warmup_epochs, args.epochs))
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            loss = F.cross_entropy(model(train_clips(x[idx])), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs:
            curve.append(round(accuracy(model, xt, yt), 1))
    print(f"init {args.init or 'scratch'}: held-out top-1 every 5 epochs {curve}")


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Mean patch token and class token of the last block (before the final norm)."""
    model.eval()
    out = []
    for i in range(0, len(x), 100):
        tokens = model.forward_features(centre_clips(x[i:i + 100]))
        out.append(torch.cat([tokens[:, 1:].mean(1), tokens[:, 0]], -1))
    return torch.cat(out).numpy()


def probe(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = load_split(args.root, "train")
    xt, yt = load_split(args.root, "val")
    torch.manual_seed(args.seed)
    model = classifier(args.init, drop_path=0.0, **width(args))
    pool, ft = features(model, x[:max(args.labelled_counts)]), features(model, xt)
    for n in args.labelled_counts:
        f = pool[:n]
        scaler = StandardScaler().fit(f)
        clf = LogisticRegression(max_iter=3000, C=0.1).fit(scaler.transform(f), y[:n].numpy())
        print(f"init {args.init or 'random'}: linear probe on {n} labelled videos, held-out top-1 "
              f"{100 * clf.score(scaler.transform(ft), yt.numpy()):.1f}")


def _block_stats(rows: list[str], blk: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
    """Forward hook: appends "residual norm after the block / attention entropy" to ``rows``."""
    h, a = blk.norm1(inputs[0]), blk.attn
    q, k = (proj(h).unflatten(-1, (a.num_heads, a.head_dim)).transpose(1, 2) for proj in (a.q, a.k))
    attn = (q @ k.transpose(-2, -1) * a.head_dim**-0.5).softmax(-1)
    entropy = -(attn * attn.clamp_min(1e-12).log()).sum(-1).mean().item()
    rows.append(f"{output.norm(dim=-1).mean().item():.1f}/{entropy:.2f}")


@torch.no_grad()
def stats(args: argparse.Namespace) -> None:
    """Token norms and attention entropy per block on held-out clips, beside a random init's."""
    xt, _ = load_split(args.root, "val")
    clips = centre_clips(xt[:20])
    torch.manual_seed(args.seed)
    for name, init in (("init", args.init), ("random", None)):
        model = classifier(init, 0.0, **width(args))
        model.eval()
        rows: list[str] = []
        hooks = [blk.register_forward_hook(partial(_block_stats, rows)) for blk in model.blocks]
        tokens = model.forward_features(clips)  # the encoder's own positions, class token and blocks
        for h in hooks:
            h.remove()
        patches, (pos, _) = model.embed_tokens(clips), model._pos_tables("pos_embed")
        print(f"{name}: patch-token norm {patches.norm(dim=-1).mean().item():.1f}, positional norm "
              f"{pos.norm(dim=-1).mean().item():.2f}; per block residual norm / attention entropy "
              f"(max {math.log(tokens.shape[1]):.2f}): {', '.join(rows)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    cmds = {name: sub.add_parser(name) for name in ("data", "pretrain", "finetune", "probe", "stats")}
    for c in cmds.values():
        c.add_argument("--root", type=Path, default=Path("runs/sweep"), help="data folder (and checkpoints)")
        c.add_argument("--seed", type=int, default=0)
        c.add_argument("--threads", type=int, default=1)
        c.add_argument("--embed-dim", type=int, default=GEO["embed_dim"], help="encoder width, both models")
        c.add_argument("--num-heads", type=int, default=GEO["num_heads"])
        c.add_argument("--depth", type=int, default=GEO["depth"], help="encoder blocks, both models")
    d = cmds["data"]
    d.add_argument("--videos", type=int, default=2400)
    d.add_argument("--test-fraction", type=float, default=0.125)
    d.add_argument("--background", choices=["blobs", "plain"], default="plain")
    pre = cmds["pretrain"]
    pre.add_argument("--epochs", type=int, default=50)
    pre.add_argument("--lr", type=float, default=3e-4)
    pre.add_argument("--mask-ratio", type=float, default=0.75)
    pre.add_argument("--norm-pix", action="store_true")
    pre.add_argument("--weight-decay", type=float, default=0.05)
    pre.add_argument("--warmup-epochs", type=float, default=5.0)
    pre.add_argument("--batch-size", type=int, default=16)
    pre.add_argument("--save-every", type=int, default=25)
    pre.add_argument("--decoder-dim", type=int, default=DECODER["decoder_embed_dim"])
    pre.add_argument("--decoder-depth", type=int, default=DECODER["decoder_depth"])
    pre.add_argument("--tag", default="mae")
    for name in ("pretrain", "finetune", "probe", "stats"):
        cmds[name].add_argument("--init", default="", help="a pre-training state dict; empty: random init")
    ft = cmds["finetune"]
    ft.add_argument("--labelled", type=int, default=120)
    ft.add_argument("--epochs", type=int, default=30)
    ft.add_argument("--lr", type=float, default=3e-3)
    ft.add_argument("--layer-decay", type=float, default=0.75)
    ft.add_argument("--head-lr-scale", type=float, default=1.0, help="lr multiplier for the classifier head")
    ft.add_argument("--warmup-epochs", type=float, default=3.0)
    ft.add_argument("--batch-size", type=int, default=16)
    cmds["probe"].add_argument("--labelled-counts", type=int, nargs="+", default=[120, 600])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.cmd == "data":
        write_data(args.root, args.videos, args.test_fraction, args.background, 0)
        for split in ("train", "val"):
            print(split, tuple(load_split(args.root, split)[0].shape))
    else:
        {"pretrain": pretrain, "finetune": finetune, "probe": probe, "stats": stats}[args.cmd](args)


if __name__ == "__main__":
    main()
