"""Dual masking (VideoMAE V2): encoder and decoder masks, their token counts against the official
generators, and V2's pre-training forward and loss against tests/golden/videomae_v2_tiny.pt."""

import dataclasses
from pathlib import Path

import pytest
import torch

from maest.models.masking import (
    MaskConfig,
    decoder_mask_noise,
    decoder_num_keep,
    mask_indices,
    mask_noise,
    mask_to_noise,
    num_keep,
    running_cell_mask,
)
from maest.train.losses import reconstruction_loss

GOLDEN = Path(__file__).parents[1] / "golden" / "videomae_v2_tiny.pt"


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _grid(key: str) -> tuple[tuple[int, int, int], float]:
    size, ratio = key.split("_")
    t, h, w = map(int, size.split("x"))
    return (t, h, w), float(ratio)


def test_running_cell_masks_match_videomae_v2_for_every_offset(golden):
    for key, maps in golden["running_cell"].items():  # (4 offsets, t, h*w), 1 = masked
        grid, ratio = _grid(key)
        ours = running_cell_mask(grid, ratio, torch.arange(4)).view(4, grid[0], -1)
        assert torch.equal(ours, maps.float()), key


@pytest.mark.parametrize("strategy", ["running_cell", "run_cell"])
def test_running_cell_noise_draws_one_of_the_official_masks(golden, strategy):
    for key, maps in golden["running_cell"].items():
        grid, ratio = _grid(key)
        g = torch.Generator().manual_seed(0)
        noise = decoder_mask_noise(16, grid, strategy, generator=g)
        # the decoder keeps the tokens the running cell does not mask
        keep = decoder_num_keep(ratio, grid, strategy)
        dropped = mask_indices(noise, keep).mask.view(16, 1, -1)
        assert (dropped == maps.float().flatten(1)[None]).all(-1).any(-1).all(), key
        # the same cell as an encoder mask
        enc = mask_indices(mask_noise(16, grid, "running_cell", g), num_keep(ratio, grid, "running_cell")).mask
        assert (enc.view(16, 1, -1) == maps.float().flatten(1)[None]).all(-1).any(-1).all(), key


def test_tube_counts_follow_videomae_generator(golden):
    for key, mask in golden["tube"].items():  # one official draw, (t, h*w)
        grid, ratio = _grid(key)
        assert num_keep(ratio, grid, "tube") == int((mask == 0).sum()), key
    assert num_keep(0.9, (8, 14, 14), "tube") == 8 * 20
    assert num_keep(0.9, (8, 7, 7), "tube") == 8 * 5
    assert num_keep(0.9, (8, 14, 14), "random") == int(1568 * (1 - 0.9))  # MAE-ST's count is unchanged


def test_masks_are_reproducible_from_seeds():
    grid = (4, 4, 4)
    for strategy in ("random", "running_cell"):
        a = decoder_mask_noise(3, grid, strategy, generator=torch.Generator().manual_seed(5))
        b = decoder_mask_noise(3, grid, strategy, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
    assert decoder_mask_noise(3, grid, "none") is None
    assert decoder_num_keep(0.5, grid, "random") == 64 - 32
    assert decoder_num_keep(0.3, grid, "random") == 64 - int(0.3 * 64)


def test_mask_to_noise_replays_a_mask():
    mask = (torch.rand(3, 20) < 0.5).float()
    mask[:, 0], mask[:, 1] = 0, 1
    for b in range(3):
        m = mask_indices(mask_to_noise(mask[b:b + 1]), int((mask[b] == 0).sum())).mask
        assert torch.equal(m[0], mask[b])


@pytest.mark.parametrize("kw, msg", [
    (dict(strategy="blocks"), "model.mask.strategy='blocks' is not one of"),
    (dict(decoder="cells", decoder_ratio=0.5), "model.mask.decoder='cells' is not one of"),
    (dict(decoder="random", decoder_ratio=1.5), "must be strictly between 0 and 1"),
    (dict(decoder="random", decoder_ratio=0.0), "must be strictly between 0 and 1"),
    (dict(decoder="running_cell", decoder_ratio=0.6), "0.6 cannot be expressed by running-cell masking"),
    (dict(decoder="none", decoder_ratio=0.5), "needs a decoder mask"),
])
def test_mask_config_errors_are_one_line(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        MaskConfig(**kw).validate((8, 14, 14))
    assert "\n" not in str(e.value)


def test_running_cell_needs_an_even_grid():
    with pytest.raises(ValueError, match="even token grid; 7x7"):
        MaskConfig(decoder="running_cell", decoder_ratio=0.5).validate((8, 7, 7))
    with pytest.raises(ValueError, match="cannot be expressed"):
        num_keep(0.9, (8, 14, 14), "running_cell")


def test_loss_over_decoded_tokens_is_v2s():
    torch.manual_seed(0)
    B, L, K = 2, 12, 5
    target, mask = torch.randn(B, L, K), (torch.rand(B, L) < 0.7).float()
    ids = torch.stack([torch.randperm(L)[:6].sort().values for _ in range(B)])
    pred = torch.randn(B, 6, K)
    loss = reconstruction_loss(pred, target, mask, ids)
    # V2: labels at decoded tokens, averaged over those both masked and decoded
    t = torch.gather(target, 1, ids[..., None].expand(-1, -1, K))
    m = torch.gather(mask, 1, ids)
    expected = (((pred - t) ** 2).mean(-1) * m).sum() / m.sum()
    torch.testing.assert_close(loss, expected)
    # predictions at decoded but visible tokens do not count
    pred2 = pred.clone()
    pred2[m == 0] += 10
    torch.testing.assert_close(reconstruction_loss(pred2, target, mask, ids), loss)


# --- the model with a decoder mask ------------------------------------------------------------------

def _v2_to_maest(state: dict) -> dict:
    """VideoMAE V2 pre-training names -> maest's: fused qkv split, q/v biases, ``encoder_to_decoder``."""
    out = {}
    for key, value in state.items():
        k = key.removeprefix("encoder.")
        for a, b in (("decoder.blocks.", "decoder_blocks."), ("decoder.norm.", "decoder_norm."),
                     ("decoder.head.", "decoder_pred."), ("encoder_to_decoder.", "decoder_embed.")):
            k = k.replace(a, b)
        if k.endswith("attn.qkv.weight"):
            out.update({k.replace("qkv", n): w for n, w in zip("qkv", value.chunk(3), strict=True)})
        else:
            out[k.replace("q_bias", "q.bias").replace("v_bias", "v.bias")] = value
    return out


def _v2_tiny(decoder: str):
    from maest.models.encoder import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig
    from maest.models.mae import DecoderConfig, MAEConfig
    from maest.targets import TargetConfig

    enc = EncoderConfig(img_size=32, patch_size=8, num_frames=4, t_patch_size=2, embed_dim=32, depth=2, num_heads=2,
                        qkv_bias="qv", pos_embed_type="sincos", cls_embed=False, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD)
    dec = DecoderConfig(embed_dim=16, depth=1, num_heads=2, qkv_bias="qv", embed_bias=False, t_pred_patch_size=2)
    mask = MaskConfig("tube", decoder, 0.5 if decoder != "none" else 0.0)
    return MAEConfig(name="v2_tiny", encoder=enc, decoder=dec, mask=mask, target=TargetConfig("videomae_norm_pix"))


@pytest.mark.parametrize("case", ["running_cell", "none"])
def test_v2_pretraining_forward_and_loss_match_official(golden, case):
    from maest.train.pretrain import mae_loss

    g = golden["forward"]
    model = _v2_tiny(case).build().eval()
    model.load_state_dict(_v2_to_maest(g["state_dict"]), strict=True)
    enc_mask = g["encoder_mask"].flatten(1).float()
    dec_mask = g["cases"][case]["decoder_mask"].flatten(1).float()  # 1 = not decoded
    noise = mask_to_noise(enc_mask)
    dnoise = mask_to_noise(dec_mask) if case != "none" else None
    with torch.no_grad():
        out = model(g["input"], 0.75, noise, decoder_noise=dnoise)
        loss = mae_loss(model, g["input"], noise, dnoise, mask_ratio=0.75)
    assert torch.equal(out.mask, enc_mask)
    official = g["cases"][case]["pred"]
    if case == "none":  # V2 predicts only the masked tokens; maest's MAE-ST path predicts every token
        assert out.pred_ids is None
        pred = out.pred[enc_mask.bool()].view(official.shape)
    else:  # both list the decoded tokens in token order
        assert torch.equal(out.pred_ids, (dec_mask == 0).nonzero()[:, 1].view(2, -1))
        pred = out.pred
    torch.testing.assert_close(pred, official)
    torch.testing.assert_close(loss, g["cases"][case]["loss"])


def test_decoder_mask_changes_only_what_is_decoded(video):
    from maest.models import model_config

    cfg = model_config("tiny")
    plain = cfg.build().eval()
    cfg.mask = MaskConfig(decoder="running_cell", decoder_ratio=0.5)
    dual = cfg.build().eval()
    dual.load_state_dict(plain.state_dict())
    noise = plain.make_noise(2, generator=torch.Generator().manual_seed(0))
    dnoise = dual.make_decoder_noise(2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = plain(video, 0.75, noise)
        b = dual(video, 0.75, noise, decoder_noise=dnoise)
    assert a.pred_ids is None and a.pred.shape == (2, 32, a.pred.shape[-1])
    assert b.pred.shape == (2, 16, a.pred.shape[-1]) and b.pred_ids.shape == (2, 16)
    assert torch.equal(a.mask, b.mask)
    # a decoder with fewer tokens predicts something else for the same positions, but not nonsense
    same = torch.gather(a.pred, 1, b.pred_ids[..., None].expand(-1, -1, a.pred.shape[-1]))
    assert not torch.allclose(same, b.pred)
    # the same noise gives the same decoded tokens and predictions
    with torch.no_grad():
        c = dual(video, 0.75, noise, decoder_noise=dnoise)
    assert torch.equal(c.pred, b.pred) and torch.equal(c.pred_ids, b.pred_ids)


def test_decoder_noise_without_a_decoder_mask_is_refused(video):
    from maest.models import model_config

    model = model_config("tiny").build()
    with pytest.raises(ValueError, match="no decoder mask"):
        model(video, 0.75, decoder_noise=torch.rand(2, 32))


def test_model_config_validates_mask_and_target():
    from maest.models import model_config
    from maest.targets import TargetConfig

    cfg = model_config("tiny")
    cfg.mask = MaskConfig(decoder="running_cell", decoder_ratio=0.3)
    with pytest.raises(ValueError, match="decoder_ratio=0.3 cannot be expressed"):
        cfg.build()
    cfg = model_config("tiny")
    cfg.target = TargetConfig(kind="hog", hog_cell=3)
    with pytest.raises(ValueError, match="hog_cell=3 does not divide the patch size 8"):
        cfg.build()
    cfg.target.hog_cell = 8  # the decoder's width follows the target: 3 channels x 9 bins x 1 cell
    assert cfg.build().decoder_pred.out_features == 27


def test_reconstruction_figure_shows_the_decoded_tokens():
    from maest.figures.reconstruction import default_rows, grid_image, reconstruct
    from maest.models import model_config

    cfg = model_config("tiny")
    cfg.mask = MaskConfig(decoder="running_cell", decoder_ratio=0.5)
    panels = reconstruct(cfg.build(), torch.randn(3, 4, 32, 32), mask_ratio=0.75, seed=0)
    assert default_rows(panels) == ("original", "masked", "decoder", "reconstruction", "pasted")
    d, m = panels["decoded"], panels["mask"]
    assert d.float().mean().item() == 0.5
    grey = panels["decoder"][~d]
    assert (grey == grey[0]).all()  # tokens the decoder was not asked for are one flat grey
    assert torch.equal(panels["decoder"][d], panels["original"][d])
    assert torch.equal(panels["reconstruction"][~d], grey)  # no prediction there
    assert torch.equal(panels["pasted"][~m], panels["original"][~m])
    assert grid_image(panels).shape == (5 * 32 + 4 * 2, 2 * 32 + 2, 3)


def test_videomae_target_true_stats_of_a_perfect_prediction_is_the_clip(golden):
    from maest.figures.reconstruction import reconstruct
    from maest.targets import make_target

    model = _v2_tiny("running_cell").build().eval()
    clip = torch.randn(3, 4, 32, 32) * 0.5
    target = make_target(clip[None], model.model_cfg.target, model.target_spec, model.model_cfg.encoder.mean,
                         model.model_cfg.encoder.std)

    class Perfect(torch.nn.Module):
        def forward(self, video, ratio, noise, decoder_noise=None):
            out = model(video, ratio, noise, decoder_noise=decoder_noise)
            ids = out.pred_ids[..., None].expand(-1, -1, target.shape[-1])
            return out._replace(pred=torch.gather(target, 1, ids))

    perfect = Perfect()
    perfect.target_spec, perfect.grid, perfect.model_cfg = model.target_spec, model.grid, model.model_cfg
    perfect.make_noise, perfect.make_decoder_noise = model.make_noise, model.make_decoder_noise
    panels = reconstruct(perfect, clip, 0.75, mode="true-stats")
    d = panels["decoded"]
    diff = (panels["reconstruction"][d].int() - panels["original"][d].int()).abs().max()
    assert diff <= 1


@pytest.mark.parametrize("extra", [["model.mask.decoder=running_cell", "model.mask.decoder_ratio=0.5"],
                                   ["model.mask.strategy=tube", "model.target.kind=hog"]])
def test_pretraining_with_decoder_mask_or_hog_resumes_exactly(tmp_path, extra):
    from maest.overrides import apply_overrides
    from maest.runs.metrics import read_metrics
    from maest.train.pretrain import run
    from maest.train.recipes import get_preset

    from ..conftest import RandomClips

    def cfg(out, *more):
        return apply_overrides(get_preset("tiny"), [f"train.output_dir={out}", "train.tensorboard=false",
                                                    "train.progress=false", "train.log_every=1",
                                                    "data.num_workers=0", *extra, *more])

    def losses(path):
        return {r["step"]: r["loss"] for r in read_metrics(path / "metrics.jsonl") if "loss" in r}

    run(cfg(tmp_path / "full", "train.max_steps=4"), dataset=RandomClips())
    run(cfg(tmp_path / "split", "train.max_steps=2", "train.save_every_steps=2"), dataset=RandomClips())
    run(cfg(tmp_path / "split", "train.max_steps=4", "train.resume=auto"), dataset=RandomClips())
    a, b = losses(tmp_path / "full"), losses(tmp_path / "split")
    assert sorted(a) == [1, 2, 3, 4] and a == b


def test_decoder_masks_are_seeded_per_clip_and_leave_encoder_masks_alone():
    from maest.models import model_config
    from maest.train.pretrain import decoder_masking_noise, masking_noise

    plain = model_config("tiny").build()
    cfg = model_config("tiny")
    cfg.mask = MaskConfig(decoder="running_cell", decoder_ratio=0.5)
    dual = cfg.build()
    index = torch.tensor([3, 3, 5])
    assert torch.equal(masking_noise(plain, index, 0, 7), masking_noise(dual, index, 0, 7))
    assert decoder_masking_noise(plain, index, 0, 7) is None
    a = decoder_masking_noise(dual, index, 0, 7)
    assert torch.equal(a, decoder_masking_noise(dual, index, 0, 7))
    assert torch.equal(a[2:], decoder_masking_noise(dual, torch.tensor([5]), 0, 7))  # per clip, not per batch
    assert not torch.equal(a, decoder_masking_noise(dual, index, 0, 8))


@pytest.mark.parametrize("kind", ["videomae_pixels", "pixels"])
def test_plain_pixel_targets_draw_the_clip_from_a_perfect_prediction(kind):
    from maest.figures.reconstruction import reconstruct
    from maest.targets import TargetConfig, make_target

    cfg = _v2_tiny("none")
    cfg.target = TargetConfig(kind)
    model = cfg.build().eval()
    clip = torch.randn(3, 4, 32, 32) * 0.5
    target = make_target(clip[None], cfg.target, model.target_spec, cfg.encoder.mean, cfg.encoder.std)

    class Perfect(torch.nn.Module):
        def forward(self, video, ratio, noise):
            return model(video, ratio, noise)._replace(pred=target)

    perfect = Perfect()
    perfect.target_spec, perfect.grid, perfect.model_cfg, perfect.make_noise = (
        model.target_spec, model.grid, model.model_cfg, model.make_noise)
    panels = reconstruct(perfect, clip, 0.75)
    assert (panels["reconstruction"].int() - panels["original"].int()).abs().max() <= 1


def test_bench_counts_the_masked_decoder_and_reports_its_speedups():
    from maest.bench.step import build_model, forward_flops, summarize

    plain, dual = build_model("base"), build_model("base", 0.5)
    dense = forward_flops(plain, 0.5 / plain.num_patches, embed_all=False)
    masked, both = forward_flops(plain, 0.9, embed_all=False), forward_flops(dual, 0.9, embed_all=False)
    # the FLOP ceiling: about 7x for ViT-B at 0.9 + decoder 0.5 (4.75x without decoder masking)
    assert dense / both == pytest.approx(7.09, rel=0.01)
    assert dense / masked == pytest.approx(4.75, rel=0.01)
    assert masked / both == pytest.approx(1.49, rel=0.01)

    def row(mask, dmask, s):
        return {"model": "base", "mode": "maest", "mask": mask, "precision": "bf16", "compile": False,
                "decoder_mask": dmask, "target": "norm_pix", "s_per_step": s, "gflop_per_step": 100 / s}

    lines = summarize([row(0.0, 0.0, 12.0), row(0.9, 0.0, 3.0), row(0.9, 0.5, 2.0)])
    assert "base maest bf16: masking speedup 0.9 vs 0.0 = 4.0x" in lines
    assert any(line.startswith("base maest bf16: masking speedup 0.9 + decoder 0.5 vs 0.0 = 6.0x") for line in lines)
    assert any(line.startswith("base maest bf16: decoder mask 0.5 at 0.9 = 1.50x faster") for line in lines)


def test_bench_interleaves_mask_settings_on_the_same_weights():
    from maest.bench.step import interleaved_masks

    rows = interleaved_masks("tiny", [(0.0, 0.0), (0.75, 0.0), (0.75, 0.5)], rounds=1, batch=1, device="cpu",
                             precision="fp32")
    assert [(r["mask"], r["decoder_mask"]) for r in rows] == [(0.0, 0.0), (0.75, 0.0), (0.75, 0.5)]
    assert "paired_speedup_vs_first" not in rows[0] and all("paired_speedup_vs_first" in r for r in rows[1:])
    assert rows[0]["gflop_per_step"] > rows[1]["gflop_per_step"] > rows[2]["gflop_per_step"]


@pytest.mark.parametrize("overrides, msg", [
    (["model.mask.strategy=running_cell"], "mask_ratio=0.9 cannot be expressed by running-cell masking"),
    (["model.mask.decoder=random", "model.mask.decoder_ratio=1.5"], "decoder_ratio=1.5 must be strictly between"),
    (["model.mask.decoder=running_cell", "model.mask.decoder_ratio=0.6"], "0.6 cannot be expressed"),
    (["model.mask.strategy=cube"], "model.mask.strategy='cube' is not one of"),
    (["model.target.kind=hog", "model.target.hog_cell=3"], "hog_cell=3 does not divide the patch size 8"),
])
def test_run_config_validation_names_the_setting(overrides, msg):
    from maest.overrides import apply_overrides
    from maest.train.recipes import get_preset

    cfg = apply_overrides(get_preset("tiny"), ["model.mask.ratio=0.9", *overrides])
    with pytest.raises(ValueError, match=msg) as e:
        cfg.validate()
    assert "\n" not in str(e.value)


def test_older_config_spellings_are_upgraded():
    from maest.models import model_config
    from maest.upgrade import upgrade_model_section, upgrade_run_config

    section = dataclasses.asdict(model_config("tiny"))
    section.pop("mask"), section.pop("target")
    section.update(mask_strategy="tube", norm_pix_loss=False)  # the first resolved MAEConfig layout
    up = upgrade_model_section(section, classifier=False)
    assert up["mask"]["strategy"] == "tube" and up["target"]["kind"] == "pixels"
    run = upgrade_run_config({"model": section, "train": {}, "data": {}})
    assert run["model"]["target"]["kind"] == "pixels"
    flat = upgrade_run_config({"model": {"name": "tiny", "mask_strategy": "frame"}, "train": {"norm_pix_loss": False}})
    assert flat["model"]["mask"]["strategy"] == "frame" and flat["model"]["target"]["kind"] == "pixels"
    from maest.models import create_model

    cfg = create_model("tiny", mask_strategy="tube", norm_pix_loss=False).model_cfg  # 0.1 keywords
    assert (cfg.mask.strategy, cfg.target.kind) == ("tube", "pixels")


def test_presets_follow_videomae_v2_and_maskfeat_and_are_listed(capsys):
    from maest.cli import main
    from maest.targets import target_dim
    from maest.train.recipes import get_preset

    v2 = get_preset("videomae_v2_b_pretrain").validate()
    m, e, d = v2.model, v2.model.encoder, v2.model.decoder
    assert (m.mask.strategy, m.mask.decoder, m.mask.decoder_ratio, v2.model.mask.ratio) == ("tube", "running_cell",
                                                                                            0.5, 0.9)
    assert (e.pos_embed_type, e.cls_embed, e.qkv_bias, e.embed_dim, e.depth) == ("sincos", False, "qv", 768, 12)
    assert (d.embed_dim, d.depth, d.num_heads, d.embed_bias, d.t_pred_patch_size) == (384, 4, 6, False, 2)
    assert m.target.kind == "videomae_norm_pix" and target_dim(m.target, 16, 2) == 1536
    assert (v2.optim.blr, v2.optim.warmup_epochs, v2.optim.clip_grad, v2.train.epochs) == (1e-3, 20.0, None, 200)
    hog = get_preset("maskfeat_hog").validate().model
    assert hog.target.kind == "hog" and target_dim(hog.target, 16, hog.decoder.t_pred_patch_size) == 108
    assert hog.encoder.pos_embed_type == "separable" and hog.mask.strategy == "random"
    assert main(["models"]) == 0
    presets = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("presets:"))
    assert "videomae_v2_b_pretrain" in presets.split() and "maskfeat_hog" in presets.split()


@pytest.mark.parametrize("extra, expect", [
    (["model.mask.decoder=running_cell", "model.mask.decoder_ratio=0.5"], {"decoder_mask": "running_cell 0.5"}),
    (["model.target.kind=hog"], {"target": "hog", "note": "HOG target: the model predicts gradient histograms"}),
])
def test_reconstruct_command_reports_decoder_tokens_and_hog(tmp_path, capsys, extra, expect):
    import json

    from maest.cli import main
    from maest.data import write_moving_digits

    data = write_moving_digits(tmp_path / "data", num_videos=2, num_frames=8, size=32, val_fraction=0.0,
                               digit_scale=2)
    run = tmp_path / "run"
    sets = ["train.epochs=1", "train.batch_size=2", "data.repeat_aug=1", "data.num_workers=0",
            "train.tensorboard=false", "train.progress=false", "data.sampling_rate=2", *extra]
    assert main(["pretrain", str(data["train"]), "--preset", "tiny", "--output-dir", str(run),
                 *[a for s in sets for a in ("--set", s)]]) == 0
    video = next((tmp_path / "data").rglob("*.mp4"))
    checkpoint = sorted(run.glob("checkpoint-*.pt"))[-1]
    capsys.readouterr()
    assert main(["reconstruct", str(video), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "rec"),
                 "--no-mp4", "--mask-ratio", "0.75", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key, value in expect.items():
        assert info[key].startswith(value)
    assert Path(info["png"]).is_file() and Path(info["gif"]).is_file()
