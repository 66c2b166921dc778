"""Motion-guided masking: a per-clip motion field turned into masking noise (``model.mask.strategy=motion``).

The motion field of a clip is ``motion`` (T, 2, H, W) in pixels of the clip as the model sees it, one
*backward* displacement per frame: pixel (x, y) of frame t came from (x + u, y + v) of frame t - 1
(``motion[t] = (u, v)``; ``motion[0]`` is unused). Optical flow from frame t to frame t - 1 and H.264/HEVC
motion vectors (which point from a block to where it was in the reference picture) are both of this kind.

Two rules pick each frame's visible tokens; both keep ``int(h * w * (1 - ratio))`` tokens per temporal slice
(MGMAE's count), so a batch mixes clips of either rule and clips that fall back to random masking.

``warp`` (MGMAE, Huang et al., ICCV 2023, arXiv:2308.10794; what MCG-NJU/MGMAE @af7beb9 computes in
``engine_for_mgmae.py`` with its default and released settings: ``--init_mask_map mix_gauss --base_frame
middle --warp_type backward --hole_filling consist``, no exposure chance, top-k per frame): the random part
chooses the visible tokens of the base frame (frame T // 2); a map over the base frame's pixels is the
maximum of Gaussians (std = one patch) centred on those tokens, scaled to peak 1; the map is carried frame
to frame by bilinear backward warping along the motion (zeros outside the frame); pixels the warp leaves at
exactly 0 (holes) take the base map's value; each token scores the sum of the map over its pixels and
tubelet frames, and the highest-scoring tokens of each slice stay visible. As in MGMAE's code, the frames
*before* the base frame are warped with the same backward displacements as the frames after it (its check
for the reversed frame order compares against ``'backwarp'`` and never matches), so only backward fields are
needed, which is what a decoder's motion vectors give; ``tests/models/test_motion_golden.py`` matches its
masks exactly. The warping grid is MGMAE's: ``linspace(-1, 1, W) + u / (W / 2)`` with ``align_corners=True``.

``magnitude`` (MGM-style; *not* MGM's published construction). MGM (Fan et al., ICCV 2023, arXiv:2308.12962)
takes the motion from the compressed video's motion vectors, with no flow network, and "leverages motion vectors
to guide the position of each mask over time" (its abstract); the authors' blog adds that the masks "track motion
across successive frames". How it turns motion vectors into a mask (where a mask starts, its shape and size,
how it is carried from frame to frame, what fills the rest of the ratio) is in its method section, which we
could not read: a search of the stored public material (2 December; the paper's pages, alphaXiv's summary,
the CVF page and the Amazon Science blog, GitHub code and issues) gave only the abstract, the introduction and
the blog's opening, and MGM's code is not public. So this rule is ours, not the paper's, and no golden test
covers it: per frame, tokens are ranked by the mean motion magnitude over their pixels and tubelet frames, the
fastest-moving are masked, and tokens of equal motion (a static background) are ordered by the seeded random
part.

Clips without motion (``has_motion`` False: an intra-only video, a clip of key frames) fall back to
random masking with the same count (the random part, i.i.d. over all tokens); the data pipeline counts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maest.models.masking import MOTION_RULES, mask_to_noise, num_keep


def gaussian_base_map(visible: torch.Tensor, grid_hw: tuple[int, int], patch: int) -> torch.Tensor:
    """(B, H, W) pixel map of the base frame: the maximum of one Gaussian per visible token (centre at the
    token's pixel centre, std one patch, peak 1), divided by its maximum. ``visible``: (B, K) token ids
    (row-major over the h x w grid)."""
    h, w = grid_hw
    H, W = h * patch, w * patch
    rows = torch.linspace(0, H - 1, H).view(1, 1, H, 1)
    cols = torch.linspace(0, W - 1, W).view(1, 1, 1, W)
    cy = ((visible // w) * patch + (patch - 1.0) / 2).float().view(*visible.shape, 1, 1)
    cx = ((visible % w) * patch + (patch - 1.0) / 2).float().view(*visible.shape, 1, 1)
    d = ((rows - cy) / patch) ** 2 + ((cols - cx) / patch) ** 2
    peak = torch.exp(-d).amax(dim=1)
    return peak / peak.flatten(1).amax(dim=1).view(-1, 1, 1)


def warp_backward(image: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) sampled at (x + u, y + v) for ``motion`` (B, 2, H, W): bilinear, zeros outside,
    on MGMAE's grid (``linspace(-1, 1, n) + d / (n / 2)``, ``align_corners=True``)."""
    B, _, H, W = motion.shape
    gx = torch.linspace(-1.0, 1.0, W, device=motion.device).view(1, 1, 1, W).expand(B, -1, H, -1)
    gy = torch.linspace(-1.0, 1.0, H, device=motion.device).view(1, 1, H, 1).expand(B, -1, -1, W)
    d = torch.cat([motion[:, 0:1] / (W / 2.0), motion[:, 1:2] / (H / 2.0)], 1)
    g = (torch.cat([gx, gy], 1) + d).permute(0, 2, 3, 1)
    return F.grid_sample(image, g, mode="bilinear", padding_mode="zeros", align_corners=True)


def warped_maps(base: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W): the base map (B, H, W) at frame T // 2, carried to every frame along ``motion``
    (B, T, 2, H, W), holes (exact zeros) refilled from the base map."""
    T = motion.shape[1]
    mid = T // 2
    init = base.unsqueeze(1)
    maps: list[torch.Tensor] = [init]

    def step(prev: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        out = warp_backward(prev, field)
        return torch.where(out == 0, init, out)

    cur = init
    for t in reversed(range(mid)):  # MGMAE warps the earlier frames with the later frame's field too
        cur = step(cur, motion[:, t + 1])
        maps.insert(0, cur)
    cur = init
    for t in range(mid + 1, T):
        cur = step(cur, motion[:, t])
        maps.append(cur)
    return torch.cat(maps, 1)


def token_sums(pixels: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """(B, t, h*w) sums of a per-pixel (B, T, H, W) map over each token's tubelet frames and pixels."""
    B, T, H, W = pixels.shape
    t, h, w = grid
    pt, ph, pw = T // t, H // h, W // w
    x = pixels.reshape(B, t, pt, h, ph, w, pw).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(B, t, h * w, pt * ph * pw).sum(-1)


def _keep_top(score: torch.Tensor, tie: torch.Tensor, keep: int) -> torch.Tensor:
    """(B, t, n) mask (1 = removed): per slice, the ``keep`` largest ``score`` stay visible; equal scores
    are ordered by ``tie`` (smaller first). Stable sorts, so the result is the same on every device."""
    order = tie.argsort(dim=-1, stable=True)
    ranked = torch.gather(score, -1, order).argsort(dim=-1, descending=True, stable=True)
    visible = torch.gather(order, -1, ranked[..., :keep])
    return torch.ones_like(score).scatter_(-1, visible, 0.0)


def warp_mask(motion: torch.Tensor, base_noise: torch.Tensor, grid: tuple[int, int, int], patch: int,
              ratio: float) -> torch.Tensor:
    """MGMAE's masks (B, L), 1 = removed, for ``motion`` (B, T, 2, H, W) and the base frame's random
    order ``base_noise`` (B, h*w): its ``int(h*w*(1-ratio))`` smallest are the base frame's visible tokens."""
    t, h, w = grid
    keep = num_keep(ratio, grid, "motion") // t
    # the base map's Gaussians: MGMAE's generator keeps n - int(ratio * n) (its engine int(n * (1 - ratio)))
    visible = base_noise.argsort(dim=1)[:, : h * w - int(ratio * h * w)]
    base = gaussian_base_map(visible.cpu(), (h, w), patch).to(motion.device)
    score = token_sums(warped_maps(base, motion.float()), grid)
    tie = torch.arange(h * w, device=score.device).expand_as(score)
    return _keep_top(score, tie, keep).flatten(1)


def magnitude_mask(motion: torch.Tensor, noise: torch.Tensor, grid: tuple[int, int, int],
                   ratio: float) -> torch.Tensor:
    """MGM-style masks (B, L), 1 = removed: per slice the fastest-moving tokens are masked; equal motion is
    ordered by ``noise`` (B, L)."""
    t, h, w = grid
    keep = num_keep(ratio, grid, "motion") // t
    speed = motion.float().square().sum(2).sqrt()
    speed[:, 0] = 0.0  # the first frame has no predecessor
    score = -token_sums(speed, grid)
    return _keep_top(score, noise.view(-1, t, h * w), keep).flatten(1)


def motion_noise(noise: torch.Tensor, motion: torch.Tensor, has_motion: torch.Tensor, grid: tuple[int, int, int],
                 patch: int, ratio: float, rule: str = "warp") -> torch.Tensor:
    """Masking noise (B, L) whose ascending order keeps the motion rule's tokens (see the module note).

    Args:
        noise: (B, L) the random part, uniform draws keyed by (seed, step, video, clip) as for random
            masking; ``warp`` reads its first h*w values as the base frame's order, ``magnitude`` breaks
            ties with it, clips without motion are masked by it (random masking, the same count).
        motion: (B, T, 2, H, W) backward displacements in clip pixels (T = the clip's frames), or the same
            field on a coarser grid (B, T, 2, H/k, W/k), one vector per k x k pixels (the data pipeline's k = 4),
            repeated over its pixels.
        has_motion: (B,) bool; False rows fall back to random masking.
        grid: the token grid (t, h, w); ``patch``: pixels per token side.
    """
    if rule not in MOTION_RULES:
        raise ValueError(f"model.mask.motion_rule={rule!r} is not one of {MOTION_RULES}")
    t, h, w = grid
    B, T, two, H, W = motion.shape
    k = h * patch // H if H else 0
    if two != 2 or not k or H * k != h * patch or W * k != w * patch or T % t or noise.shape != (B, t * h * w):
        raise ValueError(f"motion field {tuple(motion.shape)} does not fit noise {tuple(noise.shape)} and a "
                         f"{t}x{h}x{w} grid of {patch}-pixel tokens: expected (B, T, 2, {h * patch}, {w * patch}) "
                         "or that size divided by a whole number")
    keep = num_keep(ratio, grid, "motion")
    fallback = (noise.argsort(dim=1).argsort(dim=1) >= keep).float()
    out = fallback.clone()
    rows = has_motion.nonzero().flatten().to(noise.device)
    if len(rows):
        m = motion[rows.to(motion.device)]
        if k > 1:
            m = m.repeat_interleave(k, -2).repeat_interleave(k, -1)
        if rule == "warp":
            got = warp_mask(m, noise[rows, : h * w], grid, patch, ratio)
        else:
            got = magnitude_mask(m, noise[rows], grid, ratio)
        out[rows] = got.to(out.device)
    return mask_to_noise(out)
