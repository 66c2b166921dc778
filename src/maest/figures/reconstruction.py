"""Reconstruction figures: original, masked input and the MAE's reconstruction of a clip.

With normalised-pixel targets (the paper's default) the model predicts each patch up to its own
mean and variance, which it never sees for masked patches. Two ways to show pixels:

* ``"honest"`` (default): each masked patch borrows the mean and variance of the nearest *visible*
  patch in (t, h, w), so only pixels the model was shown enter the picture;
* ``"true-stats"``: the ground-truth mean/variance of every patch are put back, as VideoMAE's
  visualiser does. It looks better because it leaks information; figures are labelled as such.

Models trained on plain pixels need neither; VideoMAE's per-channel targets get per-channel
statistics the same two ways. With a decoder mask (VideoMAE V2) the figure adds a row of the tokens
the decoder was asked for; the others have no prediction and stay grey. HOG targets (MaskFeat) are
gradient histograms, not pixels: the figure shows the clip and the masks and says so in a caption.
Teacher-feature targets (MVD) have nothing to draw at all: asked for a figure, they say so in one line.
Motion-masked models (``model.mask.strategy=motion``) are masked by their motion rule from the clip's motion
field, read from the run's own ``data.motion`` source (the video's motion vectors, or its flow file), and the
figure adds a row of that field's speed over the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maest.data import ClipSpec, VideoClipDataset
from maest.data.transforms import MEAN, STD
from maest.loading import read
from maest.models.motion_masking import motion_noise
from maest.targets import TargetConfig
from maest.targets.patchify import patchify, unpatchify
from maest.targets.pixels import target_frame_indices

MODES = ("honest", "true-stats")
GAP = 2
# what each panel row is called in the figures
ROW_NAMES = {"original": "original", "motion": "motion field\n(red: fast)", "masked": "masked input",
             "decoder": "decoder tokens", "reconstruction": "reconstruction",
             "pasted": "reconstruction\n+ visible patches"}
MIN_GIF_SECONDS = 3.0  # one loop of the GIF lasts at least this long, so the motion can be followed


def _to_pixels(x: torch.Tensor, mean_std: tuple = (MEAN, STD)) -> torch.Tensor:
    """Normalised (C, T, H, W) -> uint8 (T, H, W, C), undoing the model's input normalisation."""
    mean = torch.tensor(mean_std[0]).view(-1, 1, 1, 1)
    std = torch.tensor(mean_std[1]).view(-1, 1, 1, 1)
    return ((x * std + mean) * 255).clamp(0, 255).round().byte().permute(1, 2, 3, 0)


HOG_CAPTION = "HOG target: the model predicts gradient histograms, not pixels, so there is no reconstruction to draw"
FEATURES_NOTE = ("the model predicts a teacher's features (model.target.kind=features), not pixels: it has no "
                 "pixels to draw, so there is no reconstruction figure")


def _target_kind(model: nn.Module, target: TargetConfig | str | None) -> str:
    if isinstance(target, TargetConfig):
        return target.kind
    return target if target is not None else model.model_cfg.target.kind


def _token_pixels(mask: torch.Tensor, grid: tuple[int, int, int], u: int, p: int) -> torch.Tensor:
    """(L,) token flags -> (T', H, W) pixel flags at the predicted frames (each token covers u of them)."""
    t, h, w = grid
    m = mask.view(t, h, w).bool()
    return m.repeat_interleave(u, 0).repeat_interleave(p, 1).repeat_interleave(p, 2)


def speed_overlay(frames: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames in grey with the speed of ``motion`` (T, 2, H/k, W/k) in red over them,
    scaled to the clip's fastest vector (all grey when nothing moves)."""
    speed = motion.float().square().sum(1).sqrt()
    k = frames.shape[1] // speed.shape[-2]
    speed = speed.repeat_interleave(k, -2).repeat_interleave(k, -1).unsqueeze(-1)
    alpha = 0.8 * speed / speed.max().clamp_min(1e-6)
    grey = frames.float().mean(-1, keepdim=True)
    return (grey * (1 - alpha) + torch.tensor([255.0, 40.0, 0.0]) * alpha).round().clamp(0, 255).byte()


def _denormalise(pred: torch.Tensor, video: torch.Tensor, kind: str, spec, src: torch.Tensor | None,
                 mean_std: tuple) -> torch.Tensor:
    """Put per-patch statistics back into normalised-pixel predictions (B, L, K), taking token ``src[i]``'s
    statistics for token i (the truth when ``src`` is None)."""
    p, u, frames = spec
    clip = video.index_select(2, target_frame_indices(video.shape[2], frames))
    if kind == "norm_pix":
        raw = patchify(clip, p, u)
        mean, var = raw.mean(-1, keepdim=True), raw.var(-1, keepdim=True)
        if src is not None:
            mean, var = mean[:, src], var[:, src]
        return pred * (var + 1e-6) ** 0.5 + mean
    # videomae_norm_pix: per channel, in [0, 1] pixels; back to the model's input normalisation
    C = video.shape[1]
    m = torch.tensor(mean_std[0]).view(1, -1, 1, 1, 1)
    sd = torch.tensor(mean_std[1]).view(1, -1, 1, 1, 1)
    raw = patchify(clip * sd + m, p, u)
    B, L, K = raw.shape
    raw = raw.view(B, L, K // C, C)
    mu, sigma = raw.mean(-2, keepdim=True), raw.var(-2, keepdim=True).sqrt()
    if src is not None:
        mu, sigma = mu[:, src], sigma[:, src]
    pixels01 = pred.view(B, L, K // C, C) * (sigma + 1e-6) + mu
    return ((pixels01 - m.view(1, 1, 1, C)) / sd.view(1, 1, 1, C)).view(B, L, K)


def _with_motion(model: nn.Module, noise: torch.Tensor, motion: torch.Tensor | None, has_motion: bool,
                 mask_ratio: float | None) -> torch.Tensor:
    """``noise`` (1, L) made into the motion rule's masks of a motion-masked model (as pre-training does)."""
    mask = getattr(getattr(model, "model_cfg", None), "mask", None)
    if motion is None or getattr(mask, "strategy", None) != "motion":
        return noise
    ratio = mask.ratio if mask_ratio is None else mask_ratio
    return motion_noise(noise, motion.unsqueeze(0).float(), torch.tensor([has_motion]), model.grid,
                        model.model_cfg.encoder.patch_size, ratio, mask.motion_rule)


@torch.no_grad()
def reconstruct(
    model: nn.Module, clip: torch.Tensor, mask_ratio: float | None = None, seed: int = 0, mode: str = "honest",
    target: TargetConfig | str | None = None, motion: torch.Tensor | None = None, has_motion: bool = True,
) -> dict[str, torch.Tensor]:
    """Run the MAE on one clip and return uint8 (T', H, W, C) panels at the predicted frames.

    Args:
        model: a :class:`~maest.models.mae.MaskedAutoencoderViT` (eval mode is set here).
        clip: normalised (C, T, H, W).
        mask_ratio: fraction of tokens removed (default: the model's ``model.mask.ratio``).
        seed: seed of the encoder mask and, after it, the decoder mask.
        mode: "honest" or "true-stats" (see module docstring); ignored for plain pixel targets.
        target: the target the model was trained on (default: the model's own ``model.target``).
        motion: the clip's motion field (T, 2, H/k, W/k) for a model masked by motion
            (``model.mask.strategy=motion``): the masks are its motion rule's (:func:`motion_noise`; without
            motion, ``has_motion`` False, random with the same count) and a "motion" panel shows its speed.

    Returns:
        {"original", "masked", "reconstruction", "pasted"} where "pasted" shows visible patches from
        the input and reconstructions elsewhere; plus "mask" (T', H, W) bool, True = removed; with ``motion``
        also "motion". With a
        decoder mask also "decoder" (the clip at the tokens the decoder was asked for, grey elsewhere)
        and "decoded" (T', H, W) bool. HOG targets give no "reconstruction" / "pasted".
    """
    if mode not in MODES:
        raise ValueError(f"unknown reconstruction mode {mode!r}; choose one of {MODES}")
    kind = _target_kind(model, target)
    if kind == "features":
        raise ValueError(FEATURES_NOTE)
    model.eval()
    p, u, frames = model.target_spec
    grid = model.grid
    L = grid[0] * grid[1] * grid[2]
    video = clip.unsqueeze(0).float()
    g = torch.Generator().manual_seed(seed)
    noise = _with_motion(model, model.make_noise(1, generator=g), motion, has_motion, mask_ratio)
    make_dnoise = getattr(model, "make_decoder_noise", None)
    dnoise = make_dnoise(1, generator=g) if make_dnoise is not None else None
    out = model(video, mask_ratio, noise) if dnoise is None else model(video, mask_ratio, noise, decoder_noise=dnoise)
    pred_ids = getattr(out, "pred_ids", None)
    decoded = torch.ones(L, dtype=torch.bool)
    if pred_ids is not None:
        decoded = torch.zeros(L, dtype=torch.bool)
        decoded[pred_ids[0]] = True
    enc = getattr(getattr(model, "model_cfg", None), "encoder", None)
    ms = (enc.mean, enc.std) if enc is not None else (MEAN, STD)
    original = clip.index_select(1, target_frame_indices(clip.shape[1], frames))
    grey = ((0.5 - torch.tensor(ms[0])) / torch.tensor(ms[1])).view(-1, 1).to(original.dtype)
    m = _token_pixels(out.mask[0], grid, u, p)  # (T', H, W)
    masked = original.clone()
    masked[:, m] = grey
    panels = {"original": _to_pixels(original, ms), "masked": _to_pixels(masked, ms), "mask": m}
    if motion is not None:
        idx = target_frame_indices(clip.shape[1], frames)
        panels["motion"] = speed_overlay(panels["original"], motion.index_select(0, idx))
    if pred_ids is not None:
        d = _token_pixels(decoded, grid, u, p)
        asked = original.clone()
        asked[:, ~d] = grey
        panels.update(decoder=_to_pixels(asked, ms), decoded=d)
    if kind == "hog":
        return panels
    pred = torch.zeros(1, L, out.pred.shape[-1])
    pred[:, decoded] = out.pred.float().reshape(-1, out.pred.shape[-1])  # pred_ids are in token order
    if kind in ("norm_pix", "videomae_norm_pix"):
        src = nearest_visible(out.mask[0].bool(), grid) if mode == "honest" else None
        pred = _denormalise(pred, video, kind, model.target_spec, src, ms)
    elif kind == "videomae_pixels":  # [0, 1] pixels, channel innermost -> the input's normalisation
        C = clip.shape[0]
        mu, sd = torch.tensor(ms[0]).view(1, 1, 1, C), torch.tensor(ms[1]).view(1, 1, 1, C)
        pred = ((pred.view(1, L, -1, C) - mu) / sd).view(1, L, -1)
    rec = unpatchify(pred, p, u, grid, channels=clip.shape[0])[0]  # (C, T', H, W)
    if pred_ids is not None:
        rec[:, ~panels["decoded"]] = grey
    pasted = torch.where(m.unsqueeze(0), rec, original)
    panels.update(reconstruction=_to_pixels(rec, ms), pasted=_to_pixels(pasted, ms))
    return panels


@dataclass
class Reconstruction:
    """The panels of :func:`reconstruct` and the settings that made them."""

    panels: dict[str, torch.Tensor]
    mask_ratio: float
    mode: str
    target: str  # the target kind the model predicts
    decoder_mask: str | None = None  # "<strategy> <ratio>" when the model masks its decoder
    motion: str | None = None  # motion-masked models: the rule and the motion source the masks came from

    @property
    def caption(self) -> str | None:
        return caption(self.panels)


def reconstruction_panels(
    checkpoint: str | Path, video: str | Path, mask_ratio: float | None = None, mode: str = "honest",
    clip: int = 0, clips: int = 1, seed: int = 0,
) -> Reconstruction:
    """Reconstruct clip ``clip`` of ``clips`` uniform clips of ``video`` (1: the centre clip, sampled
    and cropped as the run's test clips) with the MAE of a pre-training ``checkpoint``.

    Args:
        mask_ratio: fraction of patches removed (default: the run's ``model.mask.ratio``).
        mode: "honest" or "true-stats" (see the module docstring).
        seed: masking seed.

    Raises:
        ValueError: the checkpoint holds no MAE (no decoder to reconstruct with), ``clip`` is not
            in [0, clips), or a motion-masked model's checkpoint names no motion source (``data.motion``).
    """
    source = read(checkpoint)
    if source.kind != "mae":
        raise ValueError(f"{checkpoint} holds a {source.kind}, not a pre-training (MAE) model: reconstructions "
                         "need the decoder")
    if source.model_config.target.kind == "features":
        raise ValueError(f"{checkpoint}: {FEATURES_NOTE}")
    model, mcfg = source.build(), source.model_config
    data = (source.run_config or {}).get("data", {})
    e = mcfg.encoder
    # a motion-masked model is masked from the motion its run read: the video's motion vectors or its flow file
    motion = data.get("motion", "none") if mcfg.mask.strategy == "motion" else "none"
    if mcfg.mask.strategy == "motion" and motion == "none":
        raise ValueError(f"{checkpoint} masks by motion (model.mask.strategy=motion) but names no motion source "
                         "(its run config has no data.motion=codec or flow), so its masks cannot be drawn")
    spec = ClipSpec(mode="test", num_frames=e.num_frames, sampling_rate=data.get("sampling_rate", 4),
                    crop_size=e.img_size, test_clips=clips, test_crops=1, backend=data.get("backend", "auto"),
                    mean=e.mean, std=e.std, motion=motion,
                    flow_dir=data.get("flow_dir", "") if motion == "flow" else "")
    if not 0 <= clip < clips:
        raise ValueError(f"--clip {clip} must be in [0, {clips})")
    item = VideoClipDataset([(str(video), -1)], spec)[0]
    ratio = mcfg.mask.ratio if mask_ratio is None else mask_ratio
    field, has = (item["motion"][clip], bool(item["has_motion"][clip])) if motion != "none" else (None, True)
    panels = reconstruct(model, item["video"][clip], ratio, seed=seed, mode=mode, target=mcfg.target,
                         motion=field, has_motion=has)
    decoder_mask = f"{mcfg.mask.decoder} {mcfg.mask.decoder_ratio}" if mcfg.mask.decoder != "none" else None
    about = None if field is None else (f"{mcfg.mask.motion_rule} rule, data.motion={motion}"
                                        + ("" if has else ": no motion in this clip, masked randomly"))
    return Reconstruction(panels, ratio, mode, mcfg.target.kind, decoder_mask, about)


def default_rows(panels: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """The rows a figure of ``panels`` shows: clip, its motion field (motion-masked models), masked input,
    decoder tokens (if masked), and the reconstruction rows when the target is pixels."""
    return tuple(r for r in ("original", "motion", "masked", "decoder", "reconstruction", "pasted") if r in panels)


def caption(panels: dict[str, torch.Tensor]) -> str | None:
    """A caption for figures without pixels (HOG targets)."""
    return None if "reconstruction" in panels else HOG_CAPTION


def nearest_visible(mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """For each token, the index of the nearest visible token in (t, h, w) (itself if visible).

    mask: (L,) bool, True = removed.
    """
    t, h, w = grid
    coords = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    coords = coords.reshape(-1, 3).float()
    visible = (~mask).nonzero().flatten()
    nearest = torch.cdist(coords, coords[visible]).argmin(1)
    return visible[nearest]


def grid_image(panels: dict[str, torch.Tensor], rows: tuple[str, ...] | None = None) -> np.ndarray:
    """Stack panels as rows, frames as columns: uint8 (rows*H + gaps, T*W + gaps, 3) on white, with a
    caption strip on top when the panels have no pixels to show (:func:`caption`)."""
    img = _panel_grid(panels, default_rows(panels) if rows is None else rows)
    text = caption(panels)
    return img if text is None else np.concatenate([_caption_strip(text, img.shape[1]), img])


def _panel_grid(panels: dict[str, torch.Tensor], rows: tuple[str, ...], frames: range | None = None) -> np.ndarray:
    """The panels of ``rows`` as rows, ``frames`` (default all) as columns, ``GAP`` white pixels between."""
    T, H, W, C = panels[rows[0]].shape
    frames = range(T) if frames is None else frames
    img = np.full((len(rows) * (H + GAP) - GAP, len(frames) * (W + GAP) - GAP, C), 255, np.uint8)
    for r, name in enumerate(rows):
        for c, f in enumerate(frames):
            img[r * (H + GAP): r * (H + GAP) + H, c * (W + GAP): c * (W + GAP) + W] = panels[name][f].numpy()
    return img


def row_labels(rows: tuple[str, ...], mask_ratio: float | None = None) -> list[str]:
    """The names of figure rows (:data:`ROW_NAMES`); the masked row says how much was removed."""
    names = [ROW_NAMES.get(r, r) for r in rows]
    if mask_ratio is not None and "masked" in rows:
        names[rows.index("masked")] = f"masked input\n({mask_ratio:.0%} removed)"
    return names


def labelled_figure(panels: dict[str, torch.Tensor], title: str, scale: int = 1, mask_ratio: float | None = None,
                    rows: tuple[str, ...] | None = None) -> np.ndarray:
    """The figure of ``panels`` as people read it: rows named, predicted frames numbered, ``title`` (and the
    caption of a figure without pixels) on top; uint8 (H, W, 3). ``maest reconstruct``, the demo and the
    report all draw it here."""
    rows = default_rows(panels) if rows is None else rows
    text = title if caption(panels) is None else f"{title}. {caption(panels)}"
    grid = upscale(_panel_grid(panels, rows), scale)
    return label_image(grid, row_labels(rows, mask_ratio), text, panels[rows[0]].shape[0], GAP * scale)


def label_image(img: np.ndarray, rows: list[str], title: str, columns: int = 0, gap: int = GAP) -> np.ndarray:
    """``img`` (``len(rows)`` rows of equal height, ``columns`` columns of equal width, ``gap`` white pixels
    between them) with ``title`` on top, the columns numbered under it and each row's name on its left."""
    import textwrap

    from PIL import Image, ImageDraw

    H, W = img.shape[:2]
    row_h = (H - (len(rows) - 1) * gap) / len(rows)
    size = int(min(18, max(11, row_h / 5)))
    font, pad = _font(size), max(4, size // 3)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def box(text: str) -> tuple[int, int]:
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    margin = max(box(r)[0] for r in rows) + 2 * pad
    title = "\n".join(textwrap.wrap(title, max(20, int((margin + W) / (0.6 * size))))) or " "
    head = box(title)[1] + 2 * pad + (size + pad if columns else 0)
    im = Image.new("RGB", (margin + W, head + H), "white")
    im.paste(Image.fromarray(img), (margin, head))
    draw = ImageDraw.Draw(im)
    draw.multiline_text((pad, pad), title, fill=(0, 0, 0), font=font)
    col_w = (W - (columns - 1) * gap) / columns if columns else 0
    for c in range(columns):  # the predicted frames, 1..T'
        w, _ = box(str(c + 1))
        draw.text((margin + c * (col_w + gap) + (col_w - w) / 2, head - size - pad // 2), str(c + 1), fill=(90, 90, 90),
                  font=font)
    for r, name in enumerate(rows):
        _, h = box(name)
        draw.multiline_text((pad, head + r * (row_h + gap) + (row_h - h) / 2), name, fill=(0, 0, 0), font=font)
    return np.asarray(im)


def _font(size: int):
    """PIL's built-in font at ``size`` px (Pillow >= 10.1), else its fixed bitmap font."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _caption_strip(text: str, width: int) -> np.ndarray:
    """White strip (lines * 12 px, width, 3) with ``text`` wrapped in PIL's built-in bitmap font."""
    import textwrap

    from PIL import Image, ImageDraw

    lines = textwrap.wrap(text, max(width // 6, 8), break_long_words=False)  # the default font: 6 px wide
    im = Image.new("RGB", (width, 12 * len(lines) + 2), "white")
    draw = ImageDraw.Draw(im)
    for i, line in enumerate(lines):
        draw.text((1, 1 + 12 * i), line, fill=(0, 0, 0))
    return np.asarray(im)


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """``img`` (H, W, C) with every pixel repeated ``scale`` x ``scale`` times (nearest neighbour)."""
    return np.kron(img, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else img


def save_png(img: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    from PIL import Image

    im = Image.fromarray(upscale(img, scale))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _strips(panels: dict[str, torch.Tensor], rows, scale: int, title: str = "") -> list[np.ndarray]:
    """One labelled image per predicted frame: the chosen panels one above the other, upscaled, rows named
    and the frame number in the title."""
    if rows is None:  # the figure's rows without the pasted one
        rows = tuple(r for r in default_rows(panels) if r != "pasted")
    T = panels[rows[0]].shape[0]
    head = f"{title}, " if title else ""
    return [label_image(upscale(_panel_grid(panels, rows, range(f, f + 1)), scale), row_labels(rows),
                        f"{head}frame {f + 1}/{T}", gap=GAP * scale) for f in range(T)]


def save_mp4(panels: dict[str, torch.Tensor], path: str | Path, rows: tuple[str, ...] | None = None,
             fps: int = 4, scale: int = 2, title: str = "") -> Path:
    """The GIF's frames as an H.264 MP4 (dimensions padded to even numbers)."""
    from maest.data.synthetic import encode_mp4

    frames = np.stack(_strips(panels, rows, scale, title))
    h, w = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, h - frames.shape[1]), (0, w - frames.shape[2]), (0, 0)), constant_values=255)
    return encode_mp4(frames, path, fps=fps, gop=fps)


def save_gif(panels: dict[str, torch.Tensor], path: str | Path, rows: tuple[str, ...] | None = None,
             fps: int = 4, scale: int = 1, title: str = "") -> Path:
    """Animated GIF, one animation frame per predicted frame: the chosen panels one above the other with
    their names, ``title`` and the frame number on top. Frames show at ``fps`` or slower, so that a loop lasts
    :data:`MIN_GIF_SECONDS` at least and the motion of a few predicted frames can be followed."""
    from PIL import Image

    frames = [Image.fromarray(s) for s in _strips(panels, rows, scale, title)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(int(1000 / fps), int(1000 * MIN_GIF_SECONDS / len(frames)))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return path
