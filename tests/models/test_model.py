import pytest
import torch

from maest.models import create_model, list_models
from maest.models.masking import num_keep
from maest.runs.checkpoint import load_model_weights
from maest.targets import pixel_target
from maest.train.losses import reconstruction_loss

from ..conftest import GOLDEN


def _golden():
    if not GOLDEN.is_file():
        pytest.skip(f"golden tensors not found at {GOLDEN}")
    return torch.load(GOLDEN, weights_only=True)["tiny_sep_cls"]


def _golden_model(g):
    """Our model built with the reference constructor arguments, holding the reference weights."""
    cfg = dict(g["config"])
    cfg.pop("norm_pix_loss")
    cfg["pos_embed_type"] = "separable" if cfg.pop("sep_pos_embed") else "joint"
    model = create_model("mae_vit_base_patch16", **cfg).eval()
    model.load_state_dict(g["state_dict"], strict=True)
    return model


def test_matches_official_golden_tensors():
    g = _golden()
    model = _golden_model(g)
    with torch.no_grad():
        out = model(g["input"], g["mask_ratio"], noise=g["noise"])
        loss = reconstruction_loss(out.pred, pixel_target(g["input"], *model.target_spec, "norm_pix"), out.mask)
    torch.testing.assert_close(out.pred, g["pred"])
    torch.testing.assert_close(out.mask, g["mask"])
    torch.testing.assert_close(loss, g["loss"])


def test_base_has_official_names_and_shapes():
    # official ViT-B state dict keys for 16x224, 2x16x16, sep pos-embed, cls, decoder 512x4
    model = create_model("base")
    sd = model.state_dict()
    expected = {
        "cls_token": (1, 1, 768), "pos_embed_spatial": (1, 196, 768), "pos_embed_temporal": (1, 8, 768),
        "pos_embed_class": (1, 1, 768), "patch_embed.proj.weight": (768, 3, 2, 16, 16),
        "blocks.11.attn.q.weight": (768, 768), "blocks.11.attn.k.bias": (768,), "blocks.0.mlp.fc1.weight": (3072, 768),
        "norm.weight": (768,), "decoder_embed.weight": (512, 768), "mask_token": (1, 1, 512),
        "decoder_cls_token": (1, 1, 512), "decoder_pos_embed_spatial": (1, 196, 512),
        "decoder_pos_embed_temporal": (1, 8, 512), "decoder_pos_embed_class": (1, 1, 512),
        "decoder_blocks.3.attn.proj.weight": (512, 512), "decoder_norm.bias": (512,),
        "decoder_pred.weight": (768, 512),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    per_block = ["norm1", "attn.q", "attn.k", "attn.v", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    names = {f"blocks.{i}.{n}.{w}" for i in range(12) for n in per_block for w in ("weight", "bias")}
    names |= {f"decoder_blocks.{i}.{n}.{w}" for i in range(4) for n in per_block for w in ("weight", "bias")}
    names |= {"patch_embed.proj.bias", "norm.bias", "decoder_embed.bias", "decoder_norm.weight", "decoder_pred.bias"}
    names |= set(expected)
    assert set(sd) == names
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 99.9) < 0.2  # reference: 99.9M
    # a state dict with exactly these names loads strictly
    load_model_weights(create_model("base"), sd, strict=True)


def test_registry_lists_named_sizes():
    names = list_models()
    for n in ("tiny", "small", "base", "large", "huge", "mae_vit_huge_patch14"):
        assert n in names
    with pytest.raises(ValueError, match="unknown model 'vit_gigantic'"):
        create_model("vit_gigantic")


@pytest.mark.parametrize("pos", ["separable", "joint", "sincos"])
@pytest.mark.parametrize("cls_embed", [True, False])
def test_every_parameter_gets_a_gradient(video, pos, cls_embed):
    model = create_model("tiny", pos_embed_type=pos, cls_embed=cls_embed)
    out = model(video, 0.75)
    loss = reconstruction_loss(out.pred, pixel_target(video, *model.target_spec, "norm_pix"), out.mask)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        if name == "decoder_cls_token":
            continue  # its output is dropped before the loss, as in the reference
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_output_shapes_and_kept_count(video):
    model = create_model("tiny")  # grid 2x4x4 -> L = 32, pred = 1 frame x 8 x 8 x 3
    out = model(video, 0.75)
    assert out.pred.shape == (2, 32, 192)
    assert out.mask.shape == (2, 32)
    assert (out.mask.sum(1) == 32 - num_keep(0.75, model.grid)).all()
    assert num_keep(0.9, (8, 14, 14)) == 156  # the reference's int() floor


def test_same_noise_same_output_and_visible_pred_does_not_change_loss(video):
    model = create_model("tiny").eval()
    noise = torch.rand(2, 32)
    a = model(video, 0.75, noise)
    b = model(video, 0.75, noise)
    torch.testing.assert_close(a.pred, b.pred, rtol=0, atol=0)
    target = pixel_target(video, *model.target_spec, "norm_pix")
    pred = a.pred.clone()
    pred[a.mask == 0] += 5.0  # visible tokens carry no loss
    torch.testing.assert_close(reconstruction_loss(pred, target, a.mask), reconstruction_loss(a.pred, target, a.mask))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=5), "num_frames=5 is not a multiple of t_patch_size=2"),
        (dict(img_size=30), "img_size=30 is not a multiple of patch_size=8"),
        (dict(pred_t_dim=3), "pred_t_dim=3"),
        (dict(decoder_t_pred_patch_size=3), "t_pred_patch_size=3 must be in"),
        (dict(num_heads=3), "num_heads=3 does not divide"),
        (dict(mask_strategy="blocks"), "mask.strategy='blocks' is not one of"),
        (dict(pos_embed_type="rope"), "pos_embed_type='rope' is not one of"),
        (dict(qkv_bias="k"), "qkv_bias='k' is not one of"),
        (dict(pooling="token0"), "pooling='token0' reads the first patch token"),
        (dict(depth=0), "depth=0 must be a positive integer"),
    ],
)
def test_bad_geometry_is_rejected_with_a_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("tiny", **kwargs)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_mask_ratio_outside_open_interval_is_rejected(video, ratio):
    with pytest.raises(ValueError, match=f"mask_ratio={ratio} must be strictly between 0 and 1"):
        create_model("tiny")(video, ratio)


def test_wrong_input_size_names_both_shapes():
    with pytest.raises(ValueError, match="input clip is 8x32x32 .* built for 4x32x32"):
        create_model("tiny")(torch.zeros(1, 3, 8, 32, 32), 0.5)


def test_grad_checkpointing_gives_same_gradients(video):
    torch.manual_seed(0)
    a = create_model("tiny")
    b = create_model("tiny")
    b.load_state_dict(a.state_dict())
    b.grad_checkpointing = True
    noise = torch.rand(2, 32)
    for m in (a, b):
        out = m(video, 0.75, noise)
        reconstruction_loss(out.pred, pixel_target(video, *m.target_spec, "norm_pix"), out.mask).backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        if pa.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, msg=n)


def test_reference_attention_math_matches_golden_and_sdpa():
    from maest.models.layers import reference_attention

    g = _golden()
    model = _golden_model(g)
    with torch.no_grad():
        fast = model(g["input"], g["mask_ratio"], noise=g["noise"]).pred
        with reference_attention():
            ref = model(g["input"], g["mask_ratio"], noise=g["noise"]).pred
    torch.testing.assert_close(ref, g["pred"])
    torch.testing.assert_close(fast, ref)


@pytest.mark.parametrize("bf16", [False, True])
def test_fast_paths_match_reference_math(video, monkeypatch, bf16):
    # the GEMM patch projection vs the reference's Conv3d, and CPU short-sequence explicit attention
    # vs SDPA: same weights, fp32 to rounding, bf16 autocast to bf16 rounding
    from maest.models import layers

    model = create_model("tiny").eval()
    noise = model.make_noise(video.shape[0], generator=torch.Generator().manual_seed(0))
    tol = dict(rtol=5e-2, atol=5e-2) if bf16 else dict(rtol=1e-5, atol=1e-5)

    def run():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.patch_embed(video).float(), model(video, 0.75, noise).pred.float()

    embed_fast, pred_fast = run()
    with layers.reference_attention():
        embed_conv, pred_ref = run()
    monkeypatch.setattr(layers, "_CPU_SDPA_MIN_TOKENS", 0)  # force SDPA everywhere
    _, pred_sdpa = run()
    torch.testing.assert_close(embed_fast, embed_conv, **tol)
    torch.testing.assert_close(pred_fast, pred_ref, **tol)
    torch.testing.assert_close(pred_fast, pred_sdpa, **tol)
