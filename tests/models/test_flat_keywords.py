"""Issue 20: the flat keywords of ``create_model`` named after the official mae_st constructors
(``MaskedAutoencoderViT``, ``VisionTransformer``) mean what they mean there, every LayerNorm group has
its own eps keyword, ambiguous keywords are refused, and maest 0.1 files keep their old reading."""

import dataclasses

import pytest
import torch
from torch import nn

from maest.models import create_model, model_config
from maest.models.factory import apply_flat_overrides
from maest.targets import pixel_target
from maest.train.losses import reconstruction_loss
from maest.upgrade import upgrade_model_section

from ..conftest import GOLDEN

# facebookresearch/mae_st @c5dec1b, MaskedAutoencoderViT(**golden config, mlp_ratio=4,
# norm_layer=partial(nn.LayerNorm, eps=1e-5)) with the golden weights, input and noise (run on CPU,
# fp32, with the stubs of ../shared/golden/README.md): prediction of token 14 of clip 1 and the loss
OFFICIAL_EPS_1E5_PRED_1_14 = [-0.37963083386421204, 0.16812482476234436, -0.020597713068127632,
                              0.24877697229385376, -0.0584920309484005, 0.1684383600950241]
OFFICIAL_EPS_1E5_LOSS = 1.0435036420822144


def _golden():
    if not GOLDEN.is_file():
        pytest.skip(f"golden tensors not found at {GOLDEN}")
    return torch.load(GOLDEN, weights_only=True)["tiny_sep_cls"]


def _official_keywords(g, **norm_layer):
    """The golden model's official constructor keywords, as create_model takes them: the config as
    stored plus what the official factory adds (mlp_ratio 4, norm_layer eps, biases on q/k/v)."""
    kw = dict(g["config"])
    kw["pos_embed_type"] = "separable" if kw.pop("sep_pos_embed") else "joint"  # maest's name
    return {**kw, "mlp_ratio": 4.0, "no_qkv_bias": False, **norm_layer}


def _predict(model, g):
    with torch.no_grad():
        out = model(g["input"], g["mask_ratio"], noise=g["noise"])
    loss = reconstruction_loss(out.pred, pixel_target(g["input"], *model.target_spec, "norm_pix"), out.mask)
    return out, loss


def _layernorm_groups(model: nn.Module) -> dict[str, set[float]]:
    """eps of every LayerNorm by group; fails if a LayerNorm belongs to none of them."""
    groups: dict[str, set[float]] = {}
    for name, m in model.named_modules():
        if not isinstance(m, nn.LayerNorm):
            continue
        if name.startswith("blocks."):
            group = "encoder_blocks"
        elif name == "norm":
            group = "encoder_norm"
        elif name.startswith("decoder_blocks."):
            group = "decoder_blocks"
        elif name == "decoder_norm":
            group = "decoder_norm"
        else:
            raise AssertionError(f"LayerNorm {name} is in no group")
        groups.setdefault(group, set()).add(m.eps)
    return groups


def test_official_keywords_reproduce_the_official_model():
    g = _golden()
    model = create_model("mae_vit_base_patch16", **_official_keywords(g, norm_eps=1e-6)).eval()
    model.load_state_dict(g["state_dict"], strict=True)
    out, loss = _predict(model, g)
    torch.testing.assert_close(out.pred, g["pred"])
    torch.testing.assert_close(out.mask, g["mask"])
    torch.testing.assert_close(loss, g["loss"])


def test_official_keywords_with_another_norm_eps_match_the_official_model():
    """The official norm_layer=partial(LayerNorm, eps=1e-5) builds every LayerNorm with that eps;
    setting the encoder's alone (the old reading) is 1.4e-2 off."""
    g = _golden()
    model = create_model("mae_vit_base_patch16", **_official_keywords(g, norm_eps=1e-5)).eval()
    model.load_state_dict(g["state_dict"], strict=True)  # eps is no weight: this loads either way
    assert _layernorm_groups(model) == {k: {1e-5} for k in
                                        ("encoder_blocks", "encoder_norm", "decoder_blocks", "decoder_norm")}
    out, loss = _predict(model, g)
    torch.testing.assert_close(out.pred[1, 14, :6], torch.tensor(OFFICIAL_EPS_1E5_PRED_1_14))
    torch.testing.assert_close(loss, torch.tensor(OFFICIAL_EPS_1E5_LOSS))
    # and the whole prediction equals the golden model with every LayerNorm's eps set by hand
    ref = create_model("mae_vit_base_patch16", **_official_keywords(g, norm_eps=1e-6)).eval()
    ref.load_state_dict(g["state_dict"], strict=True)
    for m in ref.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-5
    torch.testing.assert_close(out.pred, _predict(ref, g)[0].pred)


def test_norm_eps_reaches_every_layernorm():
    assert _layernorm_groups(create_model("tiny", norm_eps=1e-5)) == {
        "encoder_blocks": {1e-5}, "encoder_norm": {1e-5}, "decoder_blocks": {1e-5}, "decoder_norm": {1e-5}}
    # the classifier: blocks and the norm after pooling (the official VisionTransformer's norm_layer)
    vit = create_model("vit_tiny_test", num_classes=3, norm_eps=1e-5)
    assert _layernorm_groups(vit) == {"encoder_blocks": {1e-5}, "encoder_norm": {1e-5}}
    cfg = apply_flat_overrides(model_config("vit_tiny_test"), norm_eps=1e-4)
    assert (cfg.encoder.norm_eps, cfg.encoder.final_norm_eps) == (1e-4, 1e-4)


@pytest.mark.parametrize("keyword, group", [
    ("encoder_block_norm_eps", "encoder_blocks"), ("final_norm_eps", "encoder_norm"),
    ("encoder_final_norm_eps", "encoder_norm"), ("decoder_block_norm_eps", "decoder_blocks"),
    ("decoder_final_norm_eps", "decoder_norm")])
def test_each_layernorm_group_has_its_keyword_and_it_wins_over_norm_eps(keyword, group):
    alone = _layernorm_groups(create_model("tiny", **{keyword: 1e-3}))
    assert alone == {k: {1e-3 if k == group else 1e-6} for k in alone}
    both = _layernorm_groups(create_model("tiny", norm_eps=1e-5, **{keyword: 1e-3}))
    assert both == {k: {1e-3 if k == group else 1e-5} for k in both}


def test_final_norm_eps_none_is_the_encoder_blocks_eps():
    cfg = apply_flat_overrides(model_config("tiny"), encoder_block_norm_eps=1e-4, final_norm_eps=None)
    assert (cfg.encoder.norm_eps, cfg.encoder.final_norm_eps, cfg.decoder.norm_eps) == (1e-4, 1e-4, 1e-6)


def test_qkv_bias_and_mlp_ratio_reach_the_decoder():
    model = create_model("tiny", qkv_bias=False, mlp_ratio=2.0)
    keys = model.state_dict().keys()
    assert not any(k.endswith(("attn.q.bias", "attn.k.bias", "attn.v.bias")) for k in keys)
    assert model.decoder_blocks[0].mlp.fc1.out_features == 2 * model.decoder_embed.out_features
    assert model.blocks[0].mlp.fc1.out_features == 2 * model.embed_dim
    official = create_model("tiny", no_qkv_bias=True)  # the official spelling
    assert official.model_cfg.encoder.qkv_bias == official.model_cfg.decoder.qkv_bias == "none"


def test_decoder_keywords_win_for_the_decoder():
    cfg = apply_flat_overrides(model_config("tiny"), qkv_bias="qv", decoder_qkv_bias=True, mlp_ratio=2.0,
                               decoder_mlp_ratio=3.0)
    assert (cfg.encoder.qkv_bias, cfg.decoder.qkv_bias) == ("qv", "qkv")
    assert (cfg.encoder.mlp_ratio, cfg.decoder.mlp_ratio) == (2.0, 3.0)
    model = cfg.build()
    assert "decoder_blocks.0.attn.k.bias" in model.state_dict() and "blocks.0.attn.k.bias" not in model.state_dict()
    assert model.decoder_blocks[0].mlp.fc1.out_features == 3 * model.decoder_embed.out_features


def _one_line_error(**kw) -> str:
    with pytest.raises(ValueError) as info:
        create_model("tiny", **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_ambiguous_keywords_are_refused_in_one_line():
    msg = _one_line_error(decoder_norm_eps=1e-5)
    assert "decoder_norm_eps is ambiguous" in msg
    for alternative in ("decoder_final_norm_eps", "decoder_block_norm_eps", "norm_eps"):
        assert alternative in msg
    msg = _one_line_error(qkv_bias="qv", no_qkv_bias=True)
    assert "qkv_bias='qv' contradicts no_qkv_bias=True" in msg
    msg = _one_line_error(final_norm_eps=1e-5, encoder_final_norm_eps=1e-6)
    assert "final_norm_eps" in msg and "encoder_final_norm_eps" in msg
    assert "norm_eps, encoder_block_norm_eps" in _one_line_error(encoder_norm_eps=1e-5)  # unknown: the list
    # two names of one setting that agree are no ambiguity
    cfg = apply_flat_overrides(model_config("tiny"), qkv_bias=False, no_qkv_bias=True, final_norm_eps=1e-5,
                               encoder_final_norm_eps=1e-5)
    assert cfg.encoder.qkv_bias == "none" and cfg.encoder.final_norm_eps == 1e-5
    with pytest.raises(ValueError, match="unknown model setting 'decoder_block_norm_eps'"):
        create_model("vit_tiny_test", decoder_block_norm_eps=1e-5)  # a classifier has no decoder


def test_maest_0_1_sections_keep_their_reading():
    """maest 0.1 wrote these keywords with the encoder-only meaning; upgraded files must not change."""
    old = {"name": "mae_vit_tiny_test", "norm_eps": 1e-5, "mlp_ratio": 2.0, "qkv_bias": False,
           "decoder_norm_eps": 1e-4, "final_norm_eps": 1e-3}
    up = upgrade_model_section(old, classifier=False)
    default = dataclasses.asdict(model_config("tiny").decoder)
    assert (up["encoder"]["norm_eps"], up["encoder"]["final_norm_eps"]) == (1e-5, 1e-3)
    assert (up["encoder"]["mlp_ratio"], up["encoder"]["qkv_bias"]) == (2.0, "none")
    assert up["decoder"] == {**default, "final_norm_eps": 1e-4}  # blocks, mlp_ratio, qkv_bias untouched
    legacy = apply_flat_overrides(model_config("tiny"), legacy=True, norm_eps=1e-5, mlp_ratio=2.0, qkv_bias=False,
                                  decoder_norm_eps=1e-4, final_norm_eps=1e-3)
    assert dataclasses.asdict(legacy)["decoder"] == up["decoder"]


def test_sep_pos_embed_is_the_official_switch_of_position_tables():
    from maest.models import create_model

    assert create_model("tiny", sep_pos_embed=True).cfg.pos_embed_type == "separable"
    assert create_model("tiny", sep_pos_embed=False).cfg.pos_embed_type == "joint"
    with pytest.raises(ValueError, match="contradicts sep_pos_embed"):
        create_model("tiny", sep_pos_embed=False, pos_embed_type="separable")
