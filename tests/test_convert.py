"""Converters: every key accounted for, and outputs equal to the source implementation."""

import pytest
import torch

from maest.convert import ConversionError, export_hf_videomae, from_hf_videomae, from_official, from_videomae
from maest.convert.hf_videomae import model_kwargs
from maest.models import create_model

from .conftest import GOLDEN

HF_CFG = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=128, decoder_hidden_size=16, decoder_num_hidden_layers=1,
              decoder_num_attention_heads=2, decoder_intermediate_size=64)


def _hf(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return pytest.importorskip("transformers")


def _hf_model(tf, cls, **extra):
    torch.manual_seed(0)
    cfg = tf.VideoMAEConfig(**HF_CFG, **extra)
    model = getattr(tf, cls)(cfg).eval()
    with torch.no_grad():  # random non-zero biases and norms, so nothing passes by accident
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model, cfg.to_dict()


def test_hf_pretraining_model_converts_exactly(monkeypatch):
    tf = _hf(monkeypatch)
    hf, cfg = _hf_model(tf, "VideoMAEForPreTraining", use_mean_pooling=False, norm_pix_loss=True)
    ours = create_model("mae_vit_tiny_test", **model_kwargs(cfg, "pretrain")).eval()
    ours.load_state_dict(from_hf_videomae(hf.state_dict(), ours), strict=True)
    video = torch.randn(2, 3, 4, 32, 32)
    L = ours.num_patches
    masked = torch.zeros(2, L, dtype=torch.bool)
    masked[0, torch.randperm(L)[: L // 2]] = True
    masked[1, torch.randperm(L)[: L // 2]] = True
    with torch.no_grad():
        ref = hf(video.transpose(1, 2), bool_masked_pos=masked).logits  # (B, masked, 2*8*8*3), ascending order
        noise = masked.float() + 0.5 * torch.rand(2, L)  # masked tokens sort last -> removed
        out = ours(video, 0.5, noise)
    assert torch.equal(out.mask.bool(), masked)
    pred = out.pred[masked].view(2, L // 2, -1)
    assert pred.shape == ref.shape
    torch.testing.assert_close(pred, ref, rtol=1e-5, atol=1e-5)
    assert (pred - ref).abs().max() < 1e-5


def test_hf_encoder_features_match(monkeypatch):
    from maest.models.encoder import VideoEncoder

    tf = _hf(monkeypatch)
    hf, cfg = _hf_model(tf, "VideoMAEModel", use_mean_pooling=False)
    ours = VideoEncoder(**model_kwargs(cfg, "encoder")).eval()
    ours.load_state_dict(from_hf_videomae(hf.state_dict(), ours), strict=True)
    video = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_features(video), hf(video.transpose(1, 2)).last_hidden_state,
                                   rtol=1e-5, atol=1e-5)


def test_hf_classifier_converts_exactly(monkeypatch):
    tf = _hf(monkeypatch)
    hf, cfg = _hf_model(tf, "VideoMAEForVideoClassification", num_labels=5, use_mean_pooling=True)
    ours = create_model("vit_tiny_test", **model_kwargs(cfg, "classify"), dropout=0.0).eval()
    ours.load_state_dict(from_hf_videomae(hf.state_dict(), ours), strict=True)
    video = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(video), hf(video.transpose(1, 2)).logits, rtol=1e-5, atol=1e-5)


def test_export_to_hf_round_trips(monkeypatch, tmp_path):
    tf = _hf(monkeypatch)
    hf, cfg = _hf_model(tf, "VideoMAEForPreTraining", use_mean_pooling=False)
    ours = create_model("mae_vit_tiny_test", **model_kwargs(cfg, "pretrain")).eval()
    ours.load_state_dict(from_hf_videomae(hf.state_dict(), ours), strict=True)
    folder = export_hf_videomae(ours, tmp_path / "hf")
    again = tf.VideoMAEForPreTraining.from_pretrained(folder).eval()
    video = torch.randn(1, 4, 3, 32, 32)
    masked = torch.zeros(1, 32, dtype=torch.bool)
    masked[0, ::2] = True
    with torch.no_grad():
        torch.testing.assert_close(again(video, bool_masked_pos=masked).logits,
                                   hf(video, bool_masked_pos=masked).logits, rtol=1e-5, atol=1e-5)


def test_export_refuses_mae_st_architecture(tmp_path):
    with pytest.raises(ConversionError, match="positional embeddings are 'separable'.*class token"):
        export_hf_videomae(create_model("tiny"), tmp_path)


def _videomae_state(ours):
    """A VideoMAE-layout checkpoint (fused qkv, q_bias/v_bias, encoder./decoder. prefixes) of ``ours``."""
    sd, out = ours.state_dict(), {}
    for prefix, n, dst in (("blocks", len(ours.blocks), "encoder.blocks"),
                           ("decoder_blocks", len(ours.decoder_blocks), "decoder.blocks")):
        for i in range(n):
            s, d = f"{prefix}.{i}", f"{dst}.{i}"
            out[f"{d}.attn.qkv.weight"] = torch.cat([sd[f"{s}.attn.{x}.weight"] for x in "qkv"])
            out[f"{d}.attn.q_bias"], out[f"{d}.attn.v_bias"] = sd[f"{s}.attn.q.bias"], sd[f"{s}.attn.v.bias"]
            for m in ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2"):
                for w in ("weight", "bias"):
                    out[f"{d}.{m}.{w}"] = sd[f"{s}.{m}.{w}"]
    for w in ("weight", "bias"):
        out[f"encoder.patch_embed.proj.{w}"] = sd[f"patch_embed.proj.{w}"]
        out[f"encoder.norm.{w}"] = sd[f"norm.{w}"]
        out[f"decoder.norm.{w}"] = sd[f"decoder_norm.{w}"]
        out[f"decoder.head.{w}"] = sd[f"decoder_pred.{w}"]
    out["encoder_to_decoder.weight"] = sd["decoder_embed.weight"]
    out["mask_token"] = sd["mask_token"]
    return {"model": out}


def test_videomae_checkpoint_converts_and_runs_identically():
    kw = dict(pos_embed_type="sincos", cls_embed=False, mask_strategy="tube", pred_t_dim=4)
    src = create_model("tiny", **kw).eval()
    with torch.no_grad():
        for i in range(len(src.blocks)):
            src.blocks[i].attn.k.bias.zero_()
        for i in range(len(src.decoder_blocks)):
            src.decoder_blocks[i].attn.k.bias.zero_()
        src.decoder_embed.bias.zero_()
    ckpt = _videomae_state(src)
    dst = create_model("tiny", **kw).eval()
    dst.load_state_dict(from_videomae(ckpt, dst), strict=True)
    video, noise = torch.randn(2, 3, 4, 32, 32), torch.rand(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(video, 0.75, noise).pred, src(video, 0.75, noise).pred, rtol=0, atol=0)
    ckpt["model"]["encoder.blocks.0.gamma_1"] = torch.ones(32)
    with pytest.raises(ConversionError, match="layer-scale"):
        from_videomae(ckpt, dst)


def test_official_checkpoints_load_and_leftovers_fail():
    if not GOLDEN.is_file():
        pytest.skip("golden tensors not available")
    g = torch.load(GOLDEN, weights_only=True)["tiny_sep_cls"]
    c = dict(g["config"])
    c.pop("norm_pix_loss")
    c.pop("sep_pos_embed")
    mae = create_model("mae_vit_base_patch16", **c)
    for container in ("model", "model_state"):
        mae.load_state_dict(from_official({container: g["state_dict"]}, mae), strict=True)
    # pre-training weights into a classifier: decoder dropped explicitly, head from the model
    enc = {k: v for k, v in c.items() if not k.startswith("decoder") and k != "pred_t_dim"}
    vit = create_model("vit_base_patch16", num_classes=7, **enc)
    ft = {**g["state_dict"], "head.projection.weight": torch.zeros(7, 32), "head.projection.bias": torch.zeros(7)}
    vit.load_state_dict(from_official({"model": ft}, vit), strict=True)
    with pytest.raises(ConversionError, match="1 source keys not converted: \\['surprise'\\]"):
        from_official({"model": {**ft, "surprise": torch.zeros(1)}}, vit)
    with pytest.raises(ConversionError, match="model keys not filled"):
        from_official({"model": g["state_dict"]}, vit)


def test_convert_cli_hf_folder_to_maest_checkpoint_then_extract(monkeypatch, tmp_path, capsys):
    import json

    from maest import checkpoint as ckpt
    from maest.cli import main
    from maest.features import load_encoder

    tf = _hf(monkeypatch)
    hf, _ = _hf_model(tf, "VideoMAEForPreTraining", use_mean_pooling=False)
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "m.pt"), "--from", "hf"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["tensors"] == len(ckpt.load_checkpoint(tmp_path / "m.pt")["model"])
    model, _ = load_encoder(tmp_path / "m.pt")  # the config travels with the weights
    video = torch.randn(1, 3, 4, 32, 32)
    masked = torch.zeros(1, 32, dtype=torch.bool)
    masked[0, 1::2] = True
    with torch.no_grad():
        ref = hf(video.transpose(1, 2), bool_masked_pos=masked).logits
        pred = model(video, 0.5, masked.float() + 0.5 * torch.rand(1, 32)).pred[masked].view(1, 16, -1)
    torch.testing.assert_close(pred, ref, rtol=1e-5, atol=1e-5)


def test_convert_cli_official_needs_a_model_name(tmp_path, capsys):
    from maest.cli import main

    if not GOLDEN.is_file():
        pytest.skip("golden tensors not available")
    g = torch.load(GOLDEN, weights_only=True)["tiny_sep_cls"]
    torch.save({"model": g["state_dict"]}, tmp_path / "official.pth")
    assert main(["convert", str(tmp_path / "official.pth"), str(tmp_path / "o.pt"), "--from", "official"]) == 2
    assert "--model is required" in capsys.readouterr().err
