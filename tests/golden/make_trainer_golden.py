"""Regenerate ``trainer_reference.pt`` (tests/train/test_official_engine.py) from the official trainer.

Runs facebookresearch/mae_st (@c5dec1b) on CPU in fp32: its own ``engine_pretrain.train_one_epoch`` with
``util.lr_sched.adjust_learning_rate``, ``util.misc.add_weight_decay`` (bias_wd False), AdamW built as
``main_pretrain.py`` builds it (``torch.optim._multi_tensor.AdamW``, betas (0.9, 0.95)) and
``NativeScalerWithGradNormCount(fp32=True)`` with ``clip_grad``, on a tiny perturbed
``MaskedAutoencoderViT`` fed batches shaped (b, r, C, T, H, W) (its repeated-sampling reshape): 52 steps
across warmup and cosine (``runs/main``), and 6 steps of epochs whose micro-batches accum_iter does not
divide (``runs/ragged``). It also records ``util.lr_decay.param_groups_lrd`` of tiny
``models_vit.VisionTransformer``s (fine-tuning's layer-wise lr decay groups).

Nothing of the official code is copied here: the package is imported from a checkout given on the command
line (or ``$MAE_ST``). Stubbed are only imports that do not touch the numbers: timm's ``to_2tuple``,
``DropPath`` (identity at rate 0) and ``Mlp`` (fc1 -> GELU -> fc2, the same parameter names),
``simplejson``/``iopath``/``psutil`` (logging, paths, memory meters), ``torch.fb.rendezvous.zeus``
(an internal import of util/misc.py), and ``torch.cuda.synchronize`` (a no-op on CPU). The randomness
the official code draws (``torch.rand`` of the random masking) is injected in call order.

    python tests/golden/make_trainer_golden.py --mae-st /path/to/mae_st

(the path is the repository checkout, a folder holding models_mae.py). See tests/golden/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import types
import unittest.mock
from collections import namedtuple
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.optim._multi_tensor  # noqa: F401  (main_pretrain.py's AdamW: foreach)
from torch import nn

HERE = Path(__file__).resolve().parent
MAE_ST_COMMIT = "c5dec1bc01062097906ea67fe47935ec33fd46df"

# the model: the geometry of ../shared/golden/mae_st_reference_tiny.pt
MODEL = dict(img_size=32, patch_size=16, in_chans=3, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
             decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0, norm_pix_loss=True, num_frames=8,
             t_patch_size=2, pred_t_dim=4, sep_pos_embed=True, cls_embed=True, no_qkv_bias=False)
NORM_EPS = 1e-6  # the official mae_vit_* constructors' norm_layer
# the run: 16 videos x 2 clips, 2 videos per micro-batch, 2 micro-batches per step -> 4 steps per epoch,
# 13 epochs -> 52 optimizer steps, the first 12 in warmup
RUN = dict(num_videos=16, repeat_aug=2, batch_size=2, accum_iter=2, epochs=13, warmup_epochs=3, lr=4e-3,
           min_lr=2e-4, weight_decay=0.5, clip_grad=0.1, mask_ratio=0.75, betas=(0.9, 0.95))
# a ragged epoch: the first 10 videos -> 5 micro-batches per epoch, which accum_iter=2 does not divide; the
# official engine computes the 5th (forward, backward) but steps on none and zeroes it at the next epoch start,
# and its lr follows the micro-batch (data_iter_step / len(data_loader))
RAGGED = {**RUN, "num_videos": 10, "epochs": 3, "warmup_epochs": 1}
# fine-tuning's layer-decay groups: official VisionTransformer geometries and param_groups_lrd settings
LRD = dict(weight_decay=0.05, layer_decay=0.75)
LRD_MODELS = {
    "sep_cls": dict(sep_pos_embed=True, cls_embed=True),
    "joint_nocls": dict(sep_pos_embed=False, cls_embed=False),
}


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


class _Mlp(nn.Module):
    """timm's Mlp as the official blocks use it (no dropout): fc1 -> act -> fc2."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features or in_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _DropPath(nn.Module):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        if drop_prob:
            raise RuntimeError("DropPath is stubbed for rate 0 only")

    def forward(self, x):
        return x


def import_official(checkout: Path) -> SimpleNamespace:
    """The official modules, imported as the package ``mae_st`` from ``checkout``, with the stubs."""
    checkout = checkout.resolve()
    if not (checkout / "engine_pretrain.py").is_file():
        raise SystemExit(f"{checkout} is not a mae_st checkout (no engine_pretrain.py)")
    parent = checkout.parent
    if checkout.name != "mae_st":  # the code imports itself as mae_st.*: give it that name
        parent = Path(tempfile.mkdtemp())
        (parent / "mae_st").symlink_to(checkout)
    sys.path.insert(0, str(parent))
    _module("timm")
    _module("timm.models")
    _module("timm.models.layers", to_2tuple=lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x))
    _module("timm.models.vision_transformer", DropPath=_DropPath, Mlp=_Mlp)
    _module("simplejson", dumps=lambda *a, **k: "")
    _module("iopath")
    _module("iopath.common")
    _module("iopath.common.file_io", g_pathmgr=None)
    vm = namedtuple("svmem", "total available")
    _module("psutil", virtual_memory=lambda: vm(2**34, 2**33))
    _module("torch.fb")
    _module("torch.fb.rendezvous")
    _module("torch.fb.rendezvous.zeus")
    import mae_st.engine_pretrain as engine_pretrain
    import mae_st.models_mae as models_mae
    import mae_st.models_vit as models_vit
    import mae_st.util.lr_decay as lr_decay
    import mae_st.util.lr_sched as lr_sched
    import mae_st.util.misc as misc

    return SimpleNamespace(engine_pretrain=engine_pretrain, models_mae=models_mae, models_vit=models_vit,
                           lr_decay=lr_decay, lr_sched=lr_sched, misc=misc)


def perturbed_mae(off: SimpleNamespace) -> nn.Module:
    """The official tiny MAE with every parameter nudged (zero-initialised tensors cannot hide a mismatch)."""
    torch.manual_seed(0)
    model = off.models_mae.MaskedAutoencoderViT(**MODEL, norm_layer=partial(nn.LayerNorm, eps=NORM_EPS))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def make_videos() -> torch.Tensor:
    """The videos (stored in fp16, trained on in fp32): r clips of each, a shared base plus clip noise."""
    r, n = RUN["repeat_aug"], RUN["num_videos"]
    g = torch.Generator().manual_seed(2)
    shape = (n, r, MODEL["in_chans"], MODEL["num_frames"], MODEL["img_size"], MODEL["img_size"])
    base = torch.randn(shape[:1] + shape[2:], generator=g)
    return (base[:, None] + 0.3 * torch.randn(shape, generator=g)).half()


def make_schedule(run: dict, seed: int) -> dict[str, torch.Tensor]:
    """The per-epoch video order and the masking noise of every micro-batch (rows in the order of the
    reshaped batch: video-major, then clip)."""
    n, b, r = run["num_videos"], run["batch_size"], run["repeat_aug"]
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(n, generator=g) for _ in range(run["epochs"])])
    t, hw = MODEL["num_frames"] // MODEL["t_patch_size"], MODEL["img_size"] // MODEL["patch_size"]
    noise = torch.rand(run["epochs"] * (n // b), b * r, t * hw * hw, generator=g)
    return {"order": order, "noise": noise}


def train_official(off: SimpleNamespace, model: nn.Module, videos: torch.Tensor, sched: dict, run: dict, *,
                   bias_wd: bool = False) -> dict:
    """Run the official engine over the fixed batches and noise; record lr, losses, grad norms, weights."""
    args = SimpleNamespace(accum_iter=run["accum_iter"], lr=run["lr"], min_lr=run["min_lr"], epochs=run["epochs"],
                           warmup_epochs=run["warmup_epochs"], clip_grad=run["clip_grad"],
                           mask_ratio=run["mask_ratio"], repeat_aug=run["repeat_aug"], num_checkpoint_del=0)
    # main_pretrain.py's optimizer and scaler
    groups = off.misc.add_weight_decay(model, run["weight_decay"], bias_wd=bias_wd)
    optimizer = torch.optim._multi_tensor.AdamW(groups, lr=args.lr, betas=run["betas"])
    scaler = off.misc.NativeScalerWithGradNormCount(fp32=True)

    rec = {"lr": [], "loss": [], "grad_norm": []}
    real_adjust = off.lr_sched.adjust_learning_rate

    def adjust(opt, epoch, a):
        out = real_adjust(opt, epoch, a)
        rec["lr"].append([g["lr"] for g in opt.param_groups])
        return out

    def scale(loss, opt, **kw):
        norm = scaler(loss, opt, **kw)
        if norm is not None:
            rec["grad_norm"].append(float(norm))
        return norm

    noise = iter(sched["noise"])

    def rand(*size, **kw):
        row = next(noise)
        if tuple(size) != tuple(row.shape):
            raise RuntimeError(f"torch.rand{size} drawn where the noise has shape {tuple(row.shape)}")
        return row.clone()

    hook = model.register_forward_hook(lambda m, i, out: rec["loss"].append(float(out[0].detach())))
    b, videos = run["batch_size"], videos[:run["num_videos"]].float()
    with unittest.mock.patch.object(off.lr_sched, "adjust_learning_rate", adjust), \
            unittest.mock.patch("torch.rand", rand), unittest.mock.patch("torch.cuda.synchronize", lambda *a: None):
        for epoch in range(run["epochs"]):
            order = sched["order"][epoch]
            loader = [(videos[order[i:i + b]], torch.zeros(b, run["repeat_aug"]))
                      for i in range(0, run["num_videos"] - b + 1, b)]  # drop_last
            off.engine_pretrain.train_one_epoch(model, loader, optimizer, torch.device("cpu"), epoch, scale,
                                                args=args, fp32=True)
    hook.remove()
    if next(noise, None) is not None:
        raise RuntimeError("the official run drew fewer noise rows than were made")
    return {
        "run": {**run, "betas": list(run["betas"])},
        **sched,
        "lr": torch.tensor(rec["lr"], dtype=torch.float64),  # (adjust calls, groups): every accum_iter-th micro-batch
        "loss": torch.tensor(rec["loss"], dtype=torch.float64),  # (micro-batches,)
        "grad_norm": torch.tensor(rec["grad_norm"], dtype=torch.float64),  # (steps,)
        "final_state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def layer_decay_groups(off: SimpleNamespace) -> dict:
    """Per parameter name of official tiny VisionTransformers: (lr_scale, weight_decay) from param_groups_lrd."""
    out = {}
    for case, extra in LRD_MODELS.items():
        vit = off.models_vit.VisionTransformer(
            num_frames=MODEL["num_frames"], t_patch_size=MODEL["t_patch_size"], img_size=MODEL["img_size"],
            patch_size=MODEL["patch_size"], embed_dim=MODEL["embed_dim"], depth=MODEL["depth"],
            num_heads=MODEL["num_heads"], mlp_ratio=MODEL["mlp_ratio"], num_classes=5,
            norm_layer=partial(nn.LayerNorm, eps=NORM_EPS), **extra)
        groups = off.lr_decay.param_groups_lrd(vit, LRD["weight_decay"], no_weight_decay_list=vit.no_weight_decay(),
                                               layer_decay=LRD["layer_decay"])
        ids = {id(p): n for n, p in vit.named_parameters()}
        per_name = {}
        for g in groups:
            for p in g["params"]:
                per_name[ids[id(p)]] = torch.tensor([g["lr_scale"], g["weight_decay"]], dtype=torch.float64)
        if len(per_name) != len(ids):
            raise RuntimeError(f"{case}: param_groups_lrd left out {set(ids.values()) - set(per_name)}")
        out[case] = {"config": {**extra, "num_classes": 5}, "groups": per_name}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mae-st", type=Path, default=os.environ.get("MAE_ST"),
                    help="facebookresearch/mae_st checkout (default: $MAE_ST)")
    ap.add_argument("--out", type=Path, default=HERE / "trainer_reference.pt")
    a = ap.parse_args()
    if a.mae_st is None:
        raise SystemExit("pass --mae-st /path/to/mae_st (or set MAE_ST)")
    torch.set_num_threads(1)  # fixed reduction order
    off = import_official(a.mae_st)
    videos, sched = make_videos(), make_schedule(RUN, 3)
    model = perturbed_mae(off)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def official(run: dict, sched: dict, **kw) -> dict:
        m = perturbed_mae(off)
        m.load_state_dict(init)
        return train_official(off, m, videos, sched, run, **kw)

    ref = official(RUN, sched)
    # sensitivity: the weight-decay grouping and the warmup must move the final weights far beyond 1e-5
    for what, alt in (("bias_wd=True (decay every parameter)", official(RUN, sched, bias_wd=True)),
                      ("warmup_epochs + 1", official({**RUN, "warmup_epochs": RUN["warmup_epochs"] + 1}, sched))):
        diff = max((alt["final_state_dict"][k] - v).abs().max().item() for k, v in ref["final_state_dict"].items())
        print(f"{what}: max |final weight change| = {diff:.3g}")
        if diff < 1e-3:
            raise SystemExit(f"{what} changes the final weights by only {diff:.3g}: raise lr / weight decay")

    steps = ref["grad_norm"].numel()
    clipped = int((ref["grad_norm"] > RUN["clip_grad"]).sum())
    print(f"{steps} steps, loss {ref['loss'][:2].mean():.4f} -> {ref['loss'][-2:].mean():.4f}, "
          f"{clipped} steps clipped, grad norm {ref['grad_norm'].min():.3g}..{ref['grad_norm'].max():.3g}, "
          f"peak lr {ref['lr'].max():.3g}")
    if not (0 < clipped < steps and math.isfinite(ref["loss"].sum().item())):
        raise SystemExit("clip_grad should clip some steps and not others")

    golden = {
        "commit": MAE_ST_COMMIT,
        "model": {**MODEL, "norm_eps": NORM_EPS},
        "initial_state_dict": init,
        "videos": videos,
        "runs": {"main": ref, "ragged": official(RAGGED, make_schedule(RAGGED, 4))},
        "layer_decay": {"settings": dict(LRD), **layer_decay_groups(off)},
    }
    torch.save(golden, a.out)
    torch.load(a.out, weights_only=True)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
