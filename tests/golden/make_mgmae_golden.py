"""Regenerate ``mgmae_masks.pt``: MGMAE's own motion-guided masks for given flows, the reference for
``tests/models/test_motion_golden.py``.

MGMAE (Huang et al., ICCV 2023) is not part of maest and is not copied here: pass its git directory (or
work tree), and this script imports its ``engine_for_mgmae.py`` (``get_build_mask_volume_func``, which warps
the base mask along the flow and takes the top tokens per frame), ``flow_utils/softsplat.py`` (``BackWarp``)
and ``dataset/masking_generator.py`` (``MixGaussianInitialMaskingGenerator``, the base mask) as they are, on
CPU in fp32, with the released settings (``scripts/mgmae/*.sh`` and the argparse defaults: mix_gauss base
map, middle base frame, backward warping, "consist" hole filling, no exposure chance, top-k per frame).

Stubbed, none touching the numbers: the RAFT flow network (a stand-in returns the stored flow for the
frame pair it is asked about, and records the pairs), ``cupy`` (imported by softsplat for the forward-warp
CUDA kernel, not used by backward warping), MGMAE's ``utils`` (``get_rank`` -> 0) and timm's ImageNet
constants (the same values; the engine imports them for its training loop). ``torch.randperm`` is patched
to return the order of stored uniform noise (the base frame's random tokens), and ``torch.topk`` is wrapped
to check that no two tokens tie at the cut, so the masks do not depend on how top-k breaks ties.

    pip install --target /tmp/golden_deps einops
    PYTHONPATH=/tmp/golden_deps python tests/golden/make_mgmae_golden.py --mgmae /path/to/MCG-NJU/MGMAE

Flows are stored in fp16 and run in fp32 (the reference saw exactly those values).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from unittest import mock

import torch
from official_files import import_file  # tests/golden, this script's folder, is on sys.path

# name: frames, pixels (square), patch, tubelet, mask ratio, batch, global flow scale (px/frame)
CASES = {
    "t8_32px_p8_r075": dict(frames=8, size=32, patch=8, tubelet=2, ratio=0.75, batch=2, scale=2.0),
    "t8_48px_p8_r09": dict(frames=8, size=48, patch=8, tubelet=2, ratio=0.9, batch=2, scale=3.0),
    "t6_32px_p8_r05_fast": dict(frames=6, size=32, patch=8, tubelet=2, ratio=0.5, batch=2, scale=9.0),
    "t8_64px_p16_r075_tube4": dict(frames=8, size=64, patch=16, tubelet=4, ratio=0.75, batch=1, scale=4.0),
}


def _source(repo: Path, rel: str, dst: Path) -> str:
    """Copy ``rel`` out of ``repo`` (a git dir or work tree) to ``dst / rel``; returns the commit."""
    git = ["git", f"--git-dir={repo / '.git' if (repo / '.git').exists() else repo}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run([*git, "show", f"HEAD:{rel}"], capture_output=True, text=True, check=True).stdout
    out = dst / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return commit


def _stub_modules() -> None:
    cupy = types.ModuleType("cupy")
    cupy.memoize = lambda **k: (lambda f: f)
    utils = types.ModuleType("utils")
    utils.get_rank = lambda: 0
    timm = types.ModuleType("timm")
    data = types.ModuleType("timm.data")
    constants = types.ModuleType("timm.data.constants")
    constants.IMAGENET_DEFAULT_MEAN, constants.IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    sys.modules.update({"cupy": cupy, "utils": utils, "timm": timm, "timm.data": data,
                        "timm.data.constants": constants})


def load_official(repo: Path, tmp: Path) -> tuple[str, types.ModuleType, types.ModuleType]:
    commit = _source(repo, "engine_for_mgmae.py", tmp)
    _source(repo, "flow_utils/softsplat.py", tmp)
    _source(repo, "dataset/masking_generator.py", tmp)
    _stub_modules()
    flow_utils = types.ModuleType("flow_utils")
    flow_utils.__path__ = [str(tmp / "flow_utils")]
    sys.modules["flow_utils"] = flow_utils
    import_file("flow_utils.softsplat", tmp / "flow_utils" / "softsplat.py")
    del sys.modules["cupy"]  # softsplat holds its stub; einops would take it for the real array library
    gen = import_file("mgmae_masking_generator", tmp / "dataset" / "masking_generator.py")
    engine = import_file("engine_for_mgmae", tmp / "engine_for_mgmae.py")
    return commit, engine, gen


def make_flow(c: dict, g: torch.Generator) -> torch.Tensor:
    """(B, T, 2, H, W) backward flows (frame t -> t-1; t = 0 unused): a global drift, a faster moving square
    and per-pixel jitter, so warps leave the frame (holes) and cross token borders."""
    B, T, S = c["batch"], c["frames"], c["size"]
    flow = torch.zeros(B, T, 2, S, S)
    for b in range(B):
        for t in range(1, T):
            drift = (torch.rand(2, 1, 1, generator=g) * 2 - 1) * c["scale"]
            flow[b, t] = drift + 0.3 * torch.randn(2, S, S, generator=g)
            y, x = (int(v) for v in torch.randint(0, S // 2, (2,), generator=g))
            flow[b, t, :, y:y + S // 3, x:x + S // 3] += (torch.rand(2, 1, 1, generator=g) * 2 - 1) * 2 * c["scale"]
    return flow.half()


def run_case(c: dict, engine, gen, g: torch.Generator) -> dict:
    B, T, S, p = c["batch"], c["frames"], c["size"], c["patch"]
    grid = (T // c["tubelet"], S // p, S // p)
    hw = grid[1] * grid[2]
    noise = torch.rand(B, hw, generator=g)
    flow = make_flow(c, g)
    maps = []
    for b in range(B):
        with mock.patch("torch.randperm", return_value=noise[b].argsort()):
            maps.append(gen.MixGaussianInitialMaskingGenerator(grid, c["ratio"], p)())
    init = torch.stack(maps)
    calls: list[tuple[int, int]] = []

    def flow_model(img1, img2, iters, test_mode):  # RAFT stand-in: the stored flow of the pair asked for
        a, bb = int(img1[0, 0, 0, 0]), int(img2[0, 0, 0, 0])
        calls.append((a, bb))
        if a != bb + 1:
            raise AssertionError(f"MGMAE asked for the flow {a}->{bb}; only backward flows t->t-1 are stored")
        return None, flow[:, a].float()

    real_topk = torch.topk

    def checked_topk(x, k, dim=-1, largest=True, sorted=True):
        v = x.sort(dim=dim, descending=True).values
        if (v[..., k - 1] == v[..., k]).any():
            raise AssertionError("two tokens tie at the top-k cut; change the seed")
        return real_topk(x, k, dim=dim, largest=largest, sorted=sorted)

    args = types.SimpleNamespace(warp_type="backward", base_frame="middle", hole_filling="consist",
                                 exposure_chance=False, topk_on_all=False, window_size=grid, mask_ratio=c["ratio"],
                                 flow_iter=6, batch_size=B, num_sample=1, input_size=S)
    build = engine.get_build_mask_volume_func(flow_model, "cpu", args)
    nimgs = torch.arange(T, dtype=torch.float32).view(1, 1, T, 1, 1).expand(B, 3, T, S, S).contiguous()
    with mock.patch("torch.topk", checked_topk):
        mask = build(nimgs, init.unsqueeze(1).to(torch.float32))
    return {"config": {k: v for k, v in c.items() if k != "scale"}, "grid": grid, "base_noise": noise,
            "flow": flow, "init_mask_map": init, "mask": mask.bool(), "flow_pairs": torch.tensor(calls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mgmae", type=Path, required=True, help="MCG-NJU/MGMAE git directory or work tree")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "mgmae_masks.pt")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        commit, engine, gen = load_official(a.mgmae, Path(tmp))
        out = {"commit": commit, "cases": {name: run_case(c, engine, gen, g) for name, c in CASES.items()}}
    torch.save(out, a.out)
    back = torch.load(a.out, weights_only=True)
    for name, case in back["cases"].items():
        m = case["mask"]
        print(f"{name}: grid {case['grid']}, masked {int(m.sum())}/{m.numel()}, flow pairs "
              f"{case['flow_pairs'].tolist()}")
    print(f"wrote {a.out} (MGMAE {commit[:7]})")


if __name__ == "__main__":
    main()
