"""The conversion matrix: every conversion matches its source model numerically (max abs diff
<= 1e-5 on predictions, logits and features) or refuses with one line.

* Hugging Face VideoMAE: tiny models built from configs (tubelet 2/4, frames 8/16, sizes 64/112, mean
  pooling on/off, norm-pix on/off, query/value biases on/off, several decoders, transformers 4 and 5
  key names) with random weights, norms and biases; HF -> maest -> HF, each step compared with the
  HF model itself. No hub downloads.
* Original VideoMAE / VideoMAE V2: state dicts and outputs of the official model code
  (``tests/golden/videomae_reference.pt``, made by ``tests/golden/make_videomae_golden.py``).

Run with ``-s`` to see the measured differences (lines starting ``DIFF``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import maest
import maest.loading
from maest.convert import ConversionError, convert
from maest.runs import checkpoint as ckpt

GOLDEN_VIDEOMAE = Path(__file__).parents[1] / "golden" / "videomae_reference.pt"
TOL = 1e-5


def _close(case: str, what: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape, f"{case} {what}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
    diff = (ours.float() - ref.float()).abs().max().item()
    print(f"DIFF {case} {what} {diff:.3g} (max |ref| {ref.abs().max().item():.3g})")
    assert diff <= TOL, f"{case} {what}: max abs diff {diff:.3g} > {TOL}"


@pytest.fixture
def tf(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return pytest.importorskip("transformers")


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights, norms and biases (so an identity norm or a zero bias cannot hide an error).
    Weights at half the unit-variance scale keep activations O(1), as in a trained model, so an
    absolute tolerance of 1e-5 means fp32 rounding also for features without a final norm."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 * p[0].numel() ** -0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------------------------------------------
# Hugging Face matrix
# ---------------------------------------------------------------------------------------------------
# id: (architecture, tubelet, frames, size, use_mean_pooling, norm_pix_loss, qv bias, decoder
#      (width, layers, heads, mlp width) or None, transformers key names)
HF_CASES = {
    "pre-t2f8s64-mean-normpix-bias-v5": ("pre", 2, 8, 64, True, True, True, (16, 1, 2, 64), "v5"),
    "pre-t2f16s112-token-pix-nobias-v4": ("pre", 2, 16, 112, False, False, False, (32, 2, 4, 64), "v4"),
    "pre-t4f8s112-mean-pix-nobias-v5": ("pre", 4, 8, 112, True, False, False, (24, 1, 3, 48), "v5"),
    "pre-t4f16s64-token-normpix-bias-v4": ("pre", 4, 16, 64, False, True, True, (48, 2, 1, 192), "v4"),
    "cls-t2f8s64-mean-bias-v4": ("cls", 2, 8, 64, True, True, True, None, "v4"),
    "cls-t4f16s112-token-nobias-v5": ("cls", 4, 16, 112, False, True, False, None, "v5"),
    "cls-t2f16s64-token-bias-v4": ("cls", 2, 16, 64, False, True, True, None, "v4"),
    "cls-t4f8s112-mean-nobias-v5": ("cls", 4, 8, 112, True, True, False, None, "v5"),
}


def _hf_model(tf, case: str):
    arch, u, T, size, mean_pool, norm_pix, bias, dec, _ = HF_CASES[case]
    kw = dict(image_size=size, patch_size=16, num_frames=T, tubelet_size=u, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=80, use_mean_pooling=mean_pool, norm_pix_loss=norm_pix,
              qkv_bias=bias, layer_norm_eps=1e-6 if u == 2 else 1e-12)
    if dec:
        kw.update(decoder_hidden_size=dec[0], decoder_num_hidden_layers=dec[1], decoder_num_attention_heads=dec[2],
                  decoder_intermediate_size=dec[3])
    else:
        kw.update(num_labels=5, id2label={i: f"class {i}" for i in range(5)},
                  label2id={f"class {i}": i for i in range(5)})
    cls = tf.VideoMAEForPreTraining if arch == "pre" else tf.VideoMAEForVideoClassification
    model = cls(tf.VideoMAEConfig(**kw)).eval()
    _randomise(model, seed=len(case))
    return model


def _save_hf(model, folder: Path, keys: str) -> None:
    """An HF folder with transformers 5's parameter names (``query.bias``/``value.bias``, as in its
    in-memory state dict) and config key ``qv_bias``, or 4's (``q_bias``/``v_bias``, ``qkv_bias``;
    transformers 5's ``save_pretrained`` also writes these parameter names)."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    on_disk = load_file(str(folder / "model.safetensors"))
    if keys == "v5":
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        assert not cfg["qv_bias"] or any(k.endswith("attention.attention.query.bias") for k in sd)
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        cfg["qkv_bias"] = cfg.pop("qv_bias")
        assert not cfg["qkv_bias"] or any(k.endswith("attention.attention.q_bias") for k in on_disk)
    (folder / "config.json").write_text(json.dumps(cfg))


def _compare_hf(case: str, ours, hf, direction: str) -> None:
    """Outputs of a maest model ``ours`` against an HF model ``hf``."""
    arch, u, T, size = HF_CASES[case][:4]
    g = torch.Generator().manual_seed(1)
    video = torch.randn(2, 3, T, size, size, generator=g)
    pv = video.transpose(1, 2)  # HF: (B, T, C, H, W)
    with torch.no_grad():
        if arch == "cls":
            _close(case, f"{direction} logits", ours(video), hf(pv).logits)
            tokens = hf.videomae(pv).last_hidden_state  # after layernorm when there is one
            ref = hf.fc_norm(tokens.mean(1)) if hf.fc_norm is not None else tokens[:, 0]
            _close(case, f"{direction} features", ours.pool(ours.forward_features(video)), ref)
            return
        _close(case, f"{direction} features", ours.forward_features(video), hf.videomae(pv).last_hidden_state)
        L = ours.num_patches
        noise = torch.rand(2, L, generator=g)
        out = ours(video, 0.75, noise)
        masked = out.mask.bool()
        ref = hf(pv, bool_masked_pos=masked)
        K = out.pred.shape[-1]
        _close(case, f"{direction} predictions", out.pred[masked].view(2, -1, K), ref.logits)
        target = ours.model_cfg.target
        if target.kind in ("videomae_norm_pix", "videomae_pixels"):  # HF's loss, with and without norm_pix_loss
            from maest.targets import make_target
            from maest.train.losses import reconstruction_loss

            e = ours.model_cfg.encoder
            loss = reconstruction_loss(out.pred, make_target(video, target, ours.target_spec, e.mean, e.std),
                                       out.mask)
            _close(case, f"{direction} loss", loss, ref.loss)
        # visible tokens after the encoder, in token order (HF keeps them sorted)
        latent, _, ids_restore = ours.forward_encoder(video, 0.75, noise)
        ids_keep = ids_restore.argsort(1)[:, : latent.shape[1]]
        latent = latent.gather(1, ids_keep.argsort(1)[..., None].expand_as(latent))
        _close(case, f"{direction} visible features", latent,
               hf.videomae(pv, bool_masked_pos=masked).last_hidden_state)


@pytest.mark.parametrize("case", list(HF_CASES))
def test_hf_matrix_converts_exactly_both_ways(tf, tmp_path, case):
    arch, *_, norm_pix, bias, dec, keys = HF_CASES[case]
    hf = _hf_model(tf, case)
    _save_hf(hf, tmp_path / "hf", keys)
    report = convert(tmp_path / "hf", tmp_path / "m.pt")
    assert report["format"] == "hf" and report["kind"] == ("mae" if arch == "pre" else "classifier")
    rec = maest.loading.read(tmp_path / "m.pt")
    e = rec.model_config.encoder
    assert e.qkv_bias == ("qv" if bias else "none") and e.pos_embed_type == "sincos" and not e.cls_embed
    assert tuple(e.mean) == (0.485, 0.456, 0.406) and tuple(e.std) == (0.229, 0.224, 0.225)
    if arch == "pre":
        assert rec.model_config.target.kind == ("videomae_norm_pix" if norm_pix else "videomae_pixels")
        assert rec.model_config.mask.strategy == "tube"
        assert e.final_norm is (not HF_CASES[case][4])  # use_mean_pooling: no final encoder norm
    else:
        assert rec.model_config.label_names == [f"class {i}" for i in range(5)]
    ours = maest.load(tmp_path / "m.pt")
    _compare_hf(case, ours, hf, "hf->maest")

    convert(tmp_path / "m.pt", tmp_path / "back", to="hf")
    cls = tf.VideoMAEForPreTraining if arch == "pre" else tf.VideoMAEForVideoClassification
    again = cls.from_pretrained(tmp_path / "back").eval()
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    if arch == "pre":
        assert cfg["norm_pix_loss"] is norm_pix and again.config.norm_pix_loss is norm_pix
    else:
        assert again.config.id2label == {i: f"class {i}" for i in range(5)}
        assert again.config.label2id == {f"class {i}": i for i in range(5)}
    _compare_hf(case, ours, again, "maest->hf")
    proc = tf.AutoImageProcessor.from_pretrained(tmp_path / "back")
    assert list(proc.image_mean) == [0.485, 0.456, 0.406] and list(proc.image_std) == [0.229, 0.224, 0.225]


def test_hf_pretraining_with_mean_pooling_has_no_final_norm(tf, tmp_path):
    """HF's default pre-training model feeds un-normalised tokens to the decoder: no norm is invented."""
    hf = _hf_model(tf, "pre-t2f8s64-mean-normpix-bias-v5")
    hf.save_pretrained(tmp_path / "hf")
    convert(tmp_path / "hf", tmp_path / "m.pt")
    rec = maest.loading.read(tmp_path / "m.pt")
    assert rec.model_config.encoder.final_norm is False
    assert not any(k.startswith("norm.") for k in ckpt.model_state(rec.state))


def test_hf_sharded_folder_converts(tf, tmp_path):
    hf = _hf_model(tf, "cls-t2f8s64-mean-bias-v4")
    hf.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    convert(tmp_path / "hf", tmp_path / "m.pt")
    video = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        ours, ref = maest.load(tmp_path / "m.pt")(video), hf(video.transpose(1, 2)).logits
    _close("cls-sharded", "hf->maest logits", ours, ref)


def test_hf_refusals(tf, tmp_path):
    hf = _hf_model(tf, "cls-t2f8s64-mean-bias-v4")
    hf.save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for change, message in (({"hidden_act": "gelu_new"}, "only exact GELU"),
                            ({"architectures": ["VideoMAEModel"]}, "bare VideoMAEModel has no decoder or head")):
        (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, **change}))
        with pytest.raises(ConversionError, match=message):
            convert(tmp_path / "hf", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------------------------------------------
# original VideoMAE / VideoMAE V2 (outputs of the official code)
# ---------------------------------------------------------------------------------------------------
def _golden() -> dict:
    if not GOLDEN_VIDEOMAE.is_file():
        pytest.skip("tests/golden/videomae_reference.pt is missing")
    return torch.load(GOLDEN_VIDEOMAE, weights_only=True)


VIDEOMAE_CASES = ["v1_pretrain_hd32", "v1_pretrain_hd64", "v2_pretrain_nobias", "v1_finetune_mean_hd32",
                  "v1_finetune_token0_hd64", "v2_finetune_token0_hd32", "v2_finetune_mean_hd64_nobias",
                  "v2_finetune_layerscale_hd32", "v1_finetune_learnedpos_hd32"]


def _videomae_file(case: dict, path: Path) -> Path:
    torch.save({"model": {k: v.float() for k, v in case["state_dict"].items()}}, path)
    return path


def _heads(g: dict) -> dict:
    return dict(num_heads=g["heads"], decoder_num_heads=g.get("dheads"))


def _compare_videomae(name: str, c: dict, model, direction: str) -> None:
    video = c["video"].float()
    with torch.no_grad():
        if c["kind"] == "finetune":
            _close(name, f"{direction} logits", model(video), c["logits"])
            _close(name, f"{direction} features", model.pool(model.forward_features(video)), c["features"])
            return
        mask = c["mask"]
        L = mask.shape[1]
        noise = mask.float() + torch.arange(L) / (2 * L)  # kept tokens sort first, in token order
        ratio = mask[0].float().mean().item()
        out = model(video, ratio, noise)
        assert torch.equal(out.mask.bool(), mask)
        K = out.pred.shape[-1]
        _close(name, f"{direction} predictions", out.pred[mask].view(mask.shape[0], -1, K), c["pred"])
        latent, _, _ = model.forward_encoder(video, ratio, noise)
        _close(name, f"{direction} features", latent, c["features"])


@pytest.mark.parametrize("name", VIDEOMAE_CASES)
def test_videomae_official_outputs_match(tmp_path, name):
    c = _golden()[name]
    g = c["geometry"]
    src = _videomae_file(c, tmp_path / "videomae.pth")
    report = convert(src, tmp_path / "m.pt", num_frames=g["frames"], img_size=g["img"], **_heads(g))
    assert report["format"] == "videomae"
    rec = maest.loading.read(tmp_path / "m.pt")
    e = rec.model_config.encoder
    assert e.num_heads == g["heads"] and e.qkv_bias == ("qv" if g["qkv_bias"] else "none")
    if c["kind"] == "finetune":
        assert e.pooling == ("mean" if g["mean_pool"] else "token0")
        assert e.pos_embed_type == ("joint" if g.get("learned_pos") else "sincos")
    else:
        assert rec.model_config.decoder.num_heads == g["dheads"] and not rec.model_config.decoder.embed_bias
    _compare_videomae(name, c, maest.load(tmp_path / "m.pt"), "videomae->maest")


def test_videomae_head_count_is_never_guessed(tmp_path):
    c = _golden()["v1_finetune_mean_hd32"]
    src = _videomae_file(c, tmp_path / "videomae.pth")
    with pytest.raises(ConversionError, match="64 wide and 2 deep.*no VideoMAE.*pass --num-heads"):
        convert(src, tmp_path / "m.pt", num_frames=8, img_size=16)
    c = _golden()["v1_pretrain_hd32"]
    src = _videomae_file(c, tmp_path / "pre.pth")
    with pytest.raises(ConversionError, match="decoder is 32 wide.*pass --decoder-num-heads"):
        convert(src, tmp_path / "m.pt", num_frames=16, img_size=16, num_heads=2)
    with pytest.raises(ConversionError, match="--num-heads 3 does not divide the encoder width 64"):
        convert(src, tmp_path / "m.pt", num_frames=16, img_size=16, num_heads=3, decoder_num_heads=1)
    assert not (tmp_path / "m.pt").exists()


def test_release_table_gives_official_heads():
    from maest.convert.videomae import DECODER_HEADS, RELEASES, read_videomae

    # the official factories: ViT-H is 1280 wide with 16 heads (not 1280 // 64 = 20); decoders too
    assert RELEASES[(1280, 32)] == ("ViT-H", 16) and DECODER_HEADS[("ViT-H", 640)] == 8
    assert RELEASES[(1408, 40)] == ("ViT-g", 16) and DECODER_HEADS[("ViT-g", 512)] == 8
    assert [RELEASES[k][1] for k in ((384, 12), (768, 12), (1024, 24))] == [6, 12, 16]
    # a ViT-S pre-training state dict (shapes only matter): heads 6 / 3 from the table
    D, Dd = 384, 192
    state = {"encoder.patch_embed.proj.weight": torch.zeros(D, 3, 2, 16, 16),
             "encoder.patch_embed.proj.bias": torch.zeros(D),
             "encoder.norm.weight": torch.ones(D), "encoder.norm.bias": torch.zeros(D),
             "encoder_to_decoder.weight": torch.zeros(Dd, D), "mask_token": torch.zeros(1, 1, Dd),
             "decoder.norm.weight": torch.ones(Dd), "decoder.norm.bias": torch.zeros(Dd),
             "decoder.head.weight": torch.zeros(1536, Dd), "decoder.head.bias": torch.zeros(1536)}
    for prefix, n, w in (("encoder.blocks", 12, D), ("decoder.blocks", 4, Dd)):
        for i in range(n):
            b = f"{prefix}.{i}"
            state.update({f"{b}.attn.qkv.weight": torch.zeros(3 * w, w), f"{b}.attn.q_bias": torch.zeros(w),
                          f"{b}.attn.v_bias": torch.zeros(w), f"{b}.attn.proj.weight": torch.zeros(w, w),
                          f"{b}.attn.proj.bias": torch.zeros(w), f"{b}.mlp.fc1.weight": torch.zeros(4 * w, w),
                          f"{b}.mlp.fc1.bias": torch.zeros(4 * w), f"{b}.mlp.fc2.weight": torch.zeros(w, 4 * w),
                          f"{b}.mlp.fc2.bias": torch.zeros(w)})
            for n_ in ("norm1", "norm2"):
                state.update({f"{b}.{n_}.weight": torch.ones(w), f"{b}.{n_}.bias": torch.zeros(w)})
    imp = read_videomae(state)
    assert imp.encoder["num_heads"] == 6 and imp.decoder["num_heads"] == 3 and imp.decoder["depth"] == 4
    with pytest.raises(ConversionError, match="cosine attention"):
        read_videomae({**state, "encoder.blocks.0.attn.scale": torch.zeros(6, 1, 1)})


def test_videomae_token0_classifier_exports_to_hf_exactly(tf, tmp_path):
    """VideoMAE (token 0, eps 1e-6 everywhere) -> maest -> HF matches the official outputs."""
    name = "v1_finetune_token0_hd64"
    c = _golden()[name]
    g = c["geometry"]
    src = _videomae_file(c, tmp_path / "videomae.pth")
    convert(src, tmp_path / "m.pt", num_frames=g["frames"], img_size=g["img"], **_heads(g))
    convert(tmp_path / "m.pt", tmp_path / "hf", to="hf")
    hf = tf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        _close(name, "maest->hf logits", hf(c["video"].float().transpose(1, 2)).logits, c["logits"])


def test_videomae_pretraining_export_to_hf_is_refused(tmp_path):
    """VideoMAE's decoder norm has eps 1e-6; HF's is fixed at 1e-5: refused, not approximated."""
    c = _golden()["v1_pretrain_hd64"]
    g = c["geometry"]
    convert(_videomae_file(c, tmp_path / "v.pth"), tmp_path / "m.pt", num_frames=16, img_size=16, **_heads(g))
    with pytest.raises(ConversionError, match="decoder_norm has eps 1e-06"):
        convert(tmp_path / "m.pt", tmp_path / "hf", to="hf")
    assert not (tmp_path / "hf").exists()


# ---------------------------------------------------------------------------------------------------
# maest-native models, safetensors, format detection, overwrite
# ---------------------------------------------------------------------------------------------------
def _videomae_style_maest(kind: str):
    """A maest model of the VideoMAE architecture, as one trained in maest would be."""
    from maest.models import model_config

    cfg = model_config("mae_vit_tiny_test" if kind == "mae" else "vit_tiny_test")
    e = cfg.encoder
    e.pos_embed_type, e.cls_embed, e.qkv_bias, e.pooling = "sincos", False, "qv", "mean"
    if kind == "mae":
        e.final_norm_eps = e.norm_eps
        cfg.decoder.qkv_bias, cfg.decoder.embed_bias, cfg.decoder.norm_eps = "qv", False, e.norm_eps
        cfg.decoder.final_norm_eps, cfg.decoder.t_pred_patch_size = 1e-5, e.t_patch_size
        cfg.target.kind = "videomae_pixels"
    else:
        e.final_norm_eps = 1e-5
        cfg.num_classes, cfg.label_names = 3, ["run", "jump", "swim"]
    cfg.validate()
    model = cfg.build().eval()
    _randomise(model, seed=3)
    return cfg, model


@pytest.mark.parametrize("kind", ["mae", "classifier"])
def test_maest_videomae_architecture_exports_to_hf(tf, tmp_path, kind):
    import dataclasses

    cfg, model = _videomae_style_maest(kind)
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), cfg.kind, dataclasses.asdict(cfg)), tmp_path / "m.pt")
    convert(tmp_path / "m.pt", tmp_path / "hf", to="hf")
    conf = json.loads((tmp_path / "hf" / "config.json").read_text())
    e = cfg.encoder
    video = torch.randn(2, 3, e.num_frames, e.img_size, e.img_size)
    if kind == "mae":
        assert conf["norm_pix_loss"] is False and conf["use_mean_pooling"] is False
        hf = tf.VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
        noise = torch.rand(2, model.num_patches)
        with torch.no_grad():
            out = model(video, 0.5, noise)
            masked = out.mask.bool()
            ref = hf(video.transpose(1, 2), bool_masked_pos=masked).logits
        _close(f"maest-{kind}", "maest->hf predictions", out.pred[masked].view(2, -1, out.pred.shape[-1]), ref)
    else:
        assert conf["id2label"] == {"0": "run", "1": "jump", "2": "swim"}
        hf = tf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
        with torch.no_grad():
            _close(f"maest-{kind}", "maest->hf logits", model(video), hf(video.transpose(1, 2)).logits)
    proc = tf.AutoImageProcessor.from_pretrained(tmp_path / "hf")
    assert proc.crop_size["height"] == e.img_size and list(proc.image_mean) == list(e.mean)


def test_hf_export_refuses_mae_st_architecture_with_reasons(tmp_path):
    import dataclasses

    from maest.models import model_config

    cfg = model_config("mae_vit_tiny_test")
    model = cfg.build()
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), "mae", dataclasses.asdict(cfg)), tmp_path / "m.pt")
    with pytest.raises(ConversionError, match="positional embeddings are 'separable'.*class token.*key biases"):
        convert(tmp_path / "m.pt", tmp_path / "hf", to="hf")


@pytest.mark.parametrize("kind", ["mae", "classifier"])
def test_safetensors_round_trip_from_stored_config(tmp_path, kind):
    """--to safetensors needs no size flags: the config travels in the metadata and comes back."""
    import dataclasses

    from maest.models import model_config

    cfg = model_config("mae_vit_tiny_test" if kind == "mae" else "vit_tiny_test")
    cfg.encoder.num_frames, cfg.encoder.img_size = 8, 48  # not the registered sizes
    model = cfg.build().eval()
    _randomise(model, seed=5)
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), cfg.kind, dataclasses.asdict(cfg)), tmp_path / "m.pt")
    convert(tmp_path / "m.pt", tmp_path / "w.safetensors", to="safetensors")
    report = convert(tmp_path / "w.safetensors", tmp_path / "again.pt")
    assert report["format"] == "maest"
    video = torch.randn(1, 3, 8, 48, 48)
    noise = torch.rand(1, cfg.encoder.num_patches)
    for path in ("w.safetensors", "again.pt"):
        again = maest.load(tmp_path / path)
        with torch.no_grad():
            if kind == "mae":
                a, b = model(video, 0.5, noise).pred, again(video, 0.5, noise).pred
            else:
                a, b = model(video), again(video)
        assert torch.equal(a, b)


def test_format_mismatch_names_the_detected_format(tmp_path):
    import dataclasses

    from maest.models import model_config

    cfg = model_config("mae_vit_tiny_test")
    state = cfg.build().state_dict()
    torch.save({"model": state}, tmp_path / "mae_st.pth")  # official layout: separate q/k/v
    with pytest.raises(ConversionError, match="is an official MAE-ST / SlowFast checkpoint.*use --from official"):
        convert(tmp_path / "mae_st.pth", tmp_path / "m.pt", fmt="videomae")
    ckpt.atomic_save(ckpt.model_record(state, "mae", dataclasses.asdict(cfg)), tmp_path / "maest.pt")
    with pytest.raises(ConversionError, match="is a maest checkpoint, not an original VideoMAE"):
        convert(tmp_path / "maest.pt", tmp_path / "m.pt", fmt="videomae")
    c = _golden()["v1_finetune_mean_hd32"]
    with pytest.raises(ConversionError, match="is an original VideoMAE / VideoMAE V2 checkpoint.*--from videomae"):
        convert(_videomae_file(c, tmp_path / "v.pth"), tmp_path / "m.pt", fmt="official", model_name="vit_tiny_test")


def test_convert_refuses_to_overwrite_without_force(tmp_path, capsys):
    from maest.cli import main

    c = _golden()["v1_finetune_mean_hd32"]
    src = _videomae_file(c, tmp_path / "v.pth")
    args = [str(src), str(tmp_path / "m.pt"), "--num-frames", "8", "--img-size", "16", "--num-heads", "2"]
    (tmp_path / "m.pt").write_bytes(b"keep me")
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "--force" in err
    assert (tmp_path / "m.pt").read_bytes() == b"keep me"
    assert main(["convert", *args, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "videomae"
    assert maest.loading.read(tmp_path / "m.pt").kind == "classifier"


def test_cli_refusal_is_one_line(tmp_path, capsys):
    from maest.cli import main

    c = _golden()["v1_finetune_mean_hd32"]
    src = _videomae_file(c, tmp_path / "v.pth")
    assert main(["convert", str(src), str(tmp_path / "m.pt"), "--num-frames", "8", "--img-size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maest convert: error: ") and "--num-heads" in err


def test_more_refusals(tmp_path):
    from maest.convert import hf_export_problems
    from maest.models import model_config

    # learned positions record the token count: sizes that contradict it are refused
    c = _golden()["v1_finetune_learnedpos_hd32"]
    with pytest.raises(ConversionError, match="pos_embed has shape \\(1, 64, 64\\).*give 128 tokens"):
        convert(_videomae_file(c, tmp_path / "v.pth"), tmp_path / "m.pt", num_frames=16, img_size=16, num_heads=2)
    # probes and HOG targets have no Hugging Face counterpart
    probe = model_config("vit_tiny_test")
    probe.encoder.pos_embed_type, probe.encoder.cls_embed, probe.encoder.qkv_bias = "sincos", False, "qv"
    probe.encoder.final_norm_eps, probe.probe = 1e-5, "linear"
    assert any("probe" in why for why in hf_export_problems(probe))
    mae = model_config("videomae_vit_small_patch16")
    mae.decoder.final_norm_eps = 1e-5
    assert hf_export_problems(mae) == []
    mae.target.kind = "hog"
    mae.decoder.t_pred_patch_size = 1
    assert [w for w in hf_export_problems(mae) if "hog" in w] and [w for w in hf_export_problems(mae) if "frames" in w]
