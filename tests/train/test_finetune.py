import json

import pytest
import torch

from maest.models import create_model
from maest.models.probe import ProbedEncoder
from maest.models.vit import VisionTransformer, load_pretrained
from maest.overrides import apply_overrides, from_dict
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import read_metrics
from maest.train.config import FinetuneConfig
from maest.train.finetune import run
from maest.train.optim import param_groups_layer_decay
from maest.train.recipes import get_finetune_preset

from ..conftest import RandomClips


class ValClips(RandomClips):
    def __getitem__(self, i):
        item = super().__getitem__(i)
        return {"video": item["video"], "label": item["label"]}


def _cfg(out, *extra, preset="tiny_finetune"):
    return apply_overrides(get_finetune_preset(preset), [
        f"train.output_dir={out}", "train.tensorboard=false", "train.progress=false", "train.log_every=1", *extra])


def _losses(path):
    return {r["step"]: r["loss"] for r in read_metrics(path / "metrics.jsonl") if "loss" in r}


def test_classifier_pools_patch_tokens_and_norms_after_pooling():
    m = create_model("vit_tiny_test", num_classes=5, dropout=0.0).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    tokens = m.forward_features(video)
    assert tokens.shape == (2, 1 + 32, 32)
    expected = m.head(m.norm(tokens[:, 1:].mean(1)))
    torch.testing.assert_close(m(video), expected)
    no_cls = create_model("vit_tiny_test", num_classes=5, cls_embed=False).eval()
    assert no_cls.forward_features(video).shape == (2, 32, 32)  # all 32 patch tokens are pooled
    tok = create_model("vit_tiny_test", num_classes=5, global_pool="token").eval()
    torch.testing.assert_close(tok.pool(tok.forward_features(video)), tok.norm(tok.forward_features(video)[:, 0]))
    with pytest.raises(ValueError, match="needs a class token"):
        create_model("vit_tiny_test", global_pool="token", cls_embed=False)


def test_every_parameter_gets_a_gradient():
    m = create_model("vit_tiny_test", num_classes=3, drop_path_rate=0.1)
    m(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_layer_decay_group_scales():
    m = create_model("vit_tiny_test", num_classes=3)  # depth 2 -> num_layers 3
    groups = param_groups_layer_decay(m, weight_decay=0.05, layer_decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    names = dict(m.named_parameters())
    scale = {n: by_param[id(p)]["lr_scale"] for n, p in names.items()}
    wd = {n: by_param[id(p)]["weight_decay"] for n, p in names.items()}
    assert scale["cls_token"] == scale["pos_embed_spatial"] == scale["patch_embed.proj.weight"] == 0.5**3
    assert scale["blocks.0.attn.q.weight"] == 0.5**2 and scale["blocks.1.mlp.fc1.weight"] == 0.5
    assert scale["head.weight"] == scale["norm.weight"] == 1.0
    assert wd["cls_token"] == wd["pos_embed_temporal"] == wd["blocks.0.attn.q.bias"] == wd["norm.weight"] == 0.0
    assert wd["blocks.0.attn.q.weight"] == wd["head.weight"] == wd["patch_embed.proj.weight"] == 0.05
    assert sum(len(g["params"]) for g in groups) == len(names)


def test_head_lr_scale_multiplies_only_the_head():
    m = create_model("vit_tiny_test", num_classes=3)
    groups = param_groups_layer_decay(m, weight_decay=0.05, layer_decay=0.5, head_lr_scale=10.0)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    names = dict(m.named_parameters())
    assert scale[id(names["head.weight"])] == scale[id(names["head.bias"])] == 10.0
    assert scale[id(names["norm.weight"])] == 1.0 and scale[id(names["blocks.1.mlp.fc1.weight"])] == 0.5
    assert sum(len(g["params"]) for g in groups) == len(names)
    # unscaled, the head shares the final norm's groups, as before the option existed (old optimizer states load)
    default = param_groups_layer_decay(m, weight_decay=0.05, layer_decay=0.5)
    assert len(default) == len(groups) - 1 and any(
        any(p is names["head.bias"] for p in g["params"]) and any(p is names["norm.weight"] for p in g["params"])
        for g in default)
    with pytest.raises(ValueError, match="head_lr_scale=0"):
        apply_overrides(get_finetune_preset("demo_finetune"), ["optim.head_lr_scale=0"]).validate()


def test_pretrained_weights_load_with_pos_embed_interpolation():
    mae = create_model("mae_vit_tiny_test")  # 32 px, 4 frames: grid 2 x 4 x 4
    vit = create_model("vit_tiny_test", num_classes=3, img_size=48, num_frames=8)  # grid 4 x 6 x 6
    report = load_pretrained(vit, mae.state_dict())
    assert any(k.startswith("decoder_") for k in report["dropped"]) and "mask_token" in report["dropped"]
    assert len(report["resized"]) == 2 and not report["head_loaded"]
    torch.testing.assert_close(vit.blocks[1].attn.q.weight, mae.blocks[1].attn.q.weight)
    assert vit.pos_embed_spatial.shape == (1, 36, 32) and vit.pos_embed_temporal.shape == (1, 4, 32)
    assert vit.head.weight.std() < 1e-3  # re-initialised with std 2e-5
    # same grid: positional tables are copied exactly
    same = create_model("vit_tiny_test", num_classes=3)
    assert load_pretrained(same, mae.state_dict())["resized"] == []
    torch.testing.assert_close(same.pos_embed_spatial, mae.pos_embed_spatial)


def test_joint_pos_embed_interpolates():
    mae = create_model("mae_vit_tiny_test", pos_embed_type="joint")
    vit = create_model("vit_tiny_test", pos_embed_type="joint", img_size=48)
    load_pretrained(vit, mae.state_dict())
    torch.testing.assert_close(vit.pos_embed[:, :1], mae.pos_embed[:, :1])  # class slot kept


def test_unexpected_and_missing_keys_are_errors():
    mae = create_model("mae_vit_tiny_test").state_dict()
    vit = create_model("vit_tiny_test", num_classes=3)
    with pytest.raises(ValueError, match="unexpected \\['stray.weight'\\]"):
        load_pretrained(vit, {**mae, "stray.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing \\['norm.weight'\\]"):
        load_pretrained(vit, {k: v for k, v in mae.items() if k != "norm.weight"})
    with pytest.raises(ValueError, match="unexpected"):  # the encoder has a class token, the classifier not
        load_pretrained(create_model("vit_tiny_test", cls_embed=False), mae)


def test_config_round_trip_and_validation():
    cfg = get_finetune_preset("vit_l_k400_finetune")
    assert (cfg.optim.blr, cfg.optim.layer_decay, cfg.model.drop_path, cfg.model.dropout) == (2.4e-3, 0.75, 0.2, 0.3)
    assert (cfg.optim.beta2, cfg.mix.mixup, cfg.mix.cutmix, cfg.data.repeat_aug) == (0.999, 0.8, 1.0, 2)
    assert from_dict(FinetuneConfig, json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="optim.layer_decay=1.5"):
        apply_overrides(cfg, ["optim.layer_decay=1.5"]).validate()
    with pytest.raises(ValueError, match="train.parallel=fsdp is for pre-training only"):
        apply_overrides(cfg, ["train.parallel=fsdp"]).validate()


def test_resume_continues_exactly(tmp_path):
    # 8 videos / batch 2 -> 4 steps per epoch; mixup, drop path and dropout are all active
    extra = ["model.drop_path=0.2", "model.dropout=0.3", "mix.prob=1.0"]
    full = run(_cfg(tmp_path / "full", "train.max_steps=4", *extra), dataset=RandomClips())
    run(_cfg(tmp_path / "split", "train.max_steps=2", "train.save_every_steps=2", *extra), dataset=RandomClips())
    resumed = run(_cfg(tmp_path / "split", "train.max_steps=4", "train.resume=auto", *extra), dataset=RandomClips())
    assert full["steps"] == resumed["steps"] == 4
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "split")
    assert sorted(a) == [1, 2, 3, 4] and a == b
    wa = ckpt.model_state(ckpt.load_checkpoint(full["checkpoint"]))
    wb = ckpt.model_state(ckpt.load_checkpoint(resumed["checkpoint"]))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)


def test_finetune_from_pretrain_checkpoint_validates_each_epoch(tmp_path):
    mae = create_model("mae_vit_tiny_test")
    path = ckpt.atomic_save({"model": mae.state_dict()}, tmp_path / "pre.pt")
    cfg = _cfg(tmp_path / "ft", "optim.blr=1e-2")
    cfg.init = str(path)
    summary = run(cfg, dataset=RandomClips(), val_dataset=ValClips(n=6, repeat=2))
    assert [v["epoch"] for v in summary["val"]] == [1, 2]
    assert all(0 <= v["val_top1"] <= 100 for v in summary["val"])
    saved = ckpt.model_state(ckpt.load_checkpoint(summary["checkpoint"]))
    assert "head.weight" in saved and not any(k.startswith("decoder") for k in saved)


@pytest.mark.parametrize("probe", ["linear", "attentive"])
def test_probe_trains_only_the_probe(tmp_path, probe):
    from maest.train.finetune import probe as linprobe

    mae = create_model("mae_vit_tiny_test")
    path = ckpt.atomic_save({"model": mae.state_dict()}, tmp_path / "pre.pt")
    cfg = _cfg(tmp_path / probe, f"model.probe={probe}", "train.max_steps=3", preset="tiny_linprobe")
    cfg.init = str(path)
    summary = linprobe(cfg, dataset=RandomClips())
    saved = ckpt.model_state(ckpt.load_checkpoint(summary["checkpoint"]))
    torch.testing.assert_close(saved["encoder.blocks.0.attn.q.weight"], mae.blocks[0].attn.q.weight)
    if probe == "linear":
        assert "probe.bn.running_mean" in saved and "probe.bn.weight" not in saved  # BatchNorm without affine


def test_probed_encoder_keeps_encoder_in_eval_mode():
    enc = create_model("vit_tiny_test", num_classes=3, drop_path_rate=0.5, dropout=0.5)
    model = ProbedEncoder(enc, "attentive", 3).train()
    assert not model.encoder.training and model.probe.training
    assert isinstance(model.encoder, VisionTransformer)
    assert not any(p.requires_grad for p in model.encoder.parameters())
