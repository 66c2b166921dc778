"""One model spec: configs build their models, checkpoints say what they hold, one loader rebuilds
any of them, fine-tuning inherits geometry, and the data pipeline takes normalisation from the model."""

import dataclasses
from pathlib import Path

import pytest
import torch

import maest
from maest.models import ClassifierConfig, EncoderConfig, MAEConfig, create_model, model_config
from maest.models.encoder import IMAGENET_MEAN
from maest.overrides import apply_overrides, from_dict
from maest.runs import checkpoint as ckpt
from maest.train.config import FinetuneConfig, PretrainConfig
from maest.train.finetune import inherit_encoder
from maest.train.recipes import get_finetune_preset, get_preset
from maest.upgrade import upgrade_run_config

VIDEO = torch.randn(2, 3, 4, 32, 32)


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norms and biases, so an identity norm or a zero bias cannot hide a difference."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def _save(tmp_path: Path, model: torch.nn.Module, cfg, run: dict | None = None) -> Path:
    run = run or {"model": dataclasses.asdict(cfg)}
    state = ckpt.training_state(model.state_dict(), {}, 3, 0, run, cfg.kind)
    return ckpt.atomic_save(state, tmp_path / f"{cfg.kind}.pt")


def test_configs_build_their_models_and_the_model_keeps_no_second_copy():
    cfg = model_config("tiny")
    assert isinstance(cfg, MAEConfig) and cfg.encoder.depth == 2
    model = cfg.build()
    assert model.model_cfg is cfg and model.cfg is cfg.encoder
    vit = model_config("vit_tiny_test").build()
    assert isinstance(vit.model_cfg, ClassifierConfig)
    enc = EncoderConfig(img_size=32, patch_size=8, num_frames=4, embed_dim=32, depth=1, num_heads=2).build()
    assert enc.forward_features(VIDEO).shape == (2, 1 + 2 * 4 * 4, 32)


@pytest.mark.parametrize("kind", ["mae", "classifier", "probe"])
def test_load_rebuilds_every_kind_exactly(tmp_path, kind):
    if kind == "mae":
        cfg = model_config("tiny")
    else:
        cfg = model_config("vit_tiny_test")
        cfg.num_classes, cfg.label_names = 3, ["a", "b", "c"]
        cfg.probe = "none" if kind == "classifier" else "attentive"
        cfg.encoder.qkv_bias, cfg.encoder.mean = "qv", IMAGENET_MEAN
    model = _randomise(cfg.build())
    path = _save(tmp_path, model, cfg)
    loaded = maest.load(path)
    assert not loaded.training and type(loaded) is type(model)
    assert loaded.model_cfg == cfg
    torch.manual_seed(0)
    noise = torch.rand(2, 32)
    if kind == "mae":
        a, b = model(VIDEO, 0.5, noise).pred, loaded(VIDEO, 0.5, noise).pred
    else:
        a, b = model(VIDEO), loaded(VIDEO)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_create_model_pretrained_is_load_by_name(tmp_path):
    cfg = model_config("tiny")
    model = _randomise(cfg.build())
    path = _save(tmp_path, model, cfg)
    same = create_model("tiny", pretrained=path)
    assert not same.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(same.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds a different model"):
        create_model("tiny", pretrained=path, norm_eps=1e-5)  # would load, but compute other numbers


def test_a_bare_state_dict_is_refused_with_the_fix(tmp_path):
    path = ckpt.atomic_save({"model": create_model("tiny").state_dict()}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="does not say which model it holds.*maest convert"):
        maest.load(path)


def test_checkpoints_of_maest_0_1_still_load(tmp_path):
    """The run config of 0.1: a flat model section (name + optional overrides), norm_pix_loss in train."""
    model = _randomise(create_model("tiny", depth=3, qkv_bias=False, decoder_qkv_bias=True))
    old_model = {"name": "mae_vit_tiny_test", "depth": 3, "qkv_bias": False, "pred_t_dim": None,
                 "final_norm_eps": None, "grad_checkpointing": True}
    old = {"model": model.state_dict(), "optimizer": {}, "step": 1, "epoch": 0, "version": "0.1.0",
           "config": {"model": old_model, "train": {"norm_pix_loss": False}, "data": {}}}
    path = ckpt.atomic_save(old, tmp_path / "old.pt")
    loaded = maest.load(path)
    assert loaded.model_cfg.encoder.depth == 3 and loaded.model_cfg.encoder.qkv_bias == "none"
    assert loaded.model_cfg.target.kind == "pixels"
    up = upgrade_run_config(old["config"])
    assert up["train"]["grad_checkpointing"] is True and "norm_pix_loss" not in up["train"]
    # an old fine-tuning config: global_pool and the classifier's default class token translate
    ft = upgrade_run_config({"model": {"name": "vit_tiny_test", "num_classes": 4, "global_pool": "token",
                                       "cls_embed": None, "drop_path": 0.1}, "mix": {}, "train": {}})
    assert ft["model"]["encoder"]["pooling"] == "cls" and ft["model"]["encoder"]["cls_embed"] is True
    assert ft["model"]["num_classes"] == 4


def test_qkv_bias_forms_and_the_absent_final_norm():
    qv = create_model("tiny", qkv_bias="qv", decoder_qkv_bias="qkv")
    keys = qv.state_dict().keys()
    assert "blocks.0.attn.q.bias" in keys and "blocks.0.attn.k.bias" not in keys
    full = create_model("tiny")
    sd = {k: v for k, v in _randomise(qv).state_dict().items()}
    sd.update({f"blocks.{i}.attn.k.bias": torch.zeros(32) for i in range(2)})
    full.load_state_dict(sd)
    noise = torch.rand(2, 32)
    torch.testing.assert_close(full.eval()(VIDEO, 0.5, noise).pred, qv(VIDEO, 0.5, noise).pred)
    none = create_model("tiny", final_norm=False)
    assert not any(k.startswith("norm.") for k in none.state_dict())


def test_pooling_forms_of_the_classifier():
    vit = _randomise(create_model("vit_tiny_test", num_classes=3, cls_embed=False, pooling="token0", dropout=0.0))
    tokens = vit.forward_features(VIDEO)
    torch.testing.assert_close(vit.pool(tokens), vit.norm(tokens)[:, 0])  # = VideoMAE without fc_norm
    mean = _randomise(create_model("vit_tiny_test", num_classes=3, dropout=0.0))
    tokens = mean.forward_features(VIDEO)
    torch.testing.assert_close(mean.pool(tokens), mean.norm(tokens[:, 1:].mean(1)))


def test_fine_tuning_inherits_the_pretrained_geometry():
    cfg = get_finetune_preset("tiny_finetune")
    source = model_config("tiny").encoder
    source.depth, source.qkv_bias, source.mean, source.num_frames = 3, "qv", IMAGENET_MEAN, 8
    changed = inherit_encoder(cfg, source, "pre.pt")
    e = cfg.model.encoder
    assert (e.depth, e.qkv_bias, e.mean) == (3, "qv", IMAGENET_MEAN)
    assert e.num_frames == 4  # frames, resolution and pooling stay the recipe's (tables are resized)
    assert "depth=3" in changed and not any(c.startswith("num_frames") for c in changed)


def test_recipes_declare_geometry_once():
    assert get_finetune_preset("demo_finetune").model.encoder == get_preset("demo").model.encoder


def test_data_takes_normalisation_from_the_model(tmp_path):
    (tmp_path / "list.csv").write_text("a.mp4 0\n")
    cfg = get_finetune_preset("tiny_finetune")
    cfg.data.source = cfg.data.val_source = str(tmp_path / "list.csv")
    cfg.model.encoder.mean = IMAGENET_MEAN
    assert cfg.data.build(cfg.model.encoder, "val").spec.mean == IMAGENET_MEAN
    p = get_preset("tiny")
    p.data.source = str(tmp_path / "list.csv")
    assert p.data.build(p.model.encoder).spec.mean == (0.45, 0.45, 0.45)
    assert model_config("videomae_vit_base_patch16").encoder.mean == IMAGENET_MEAN


def test_setting_a_model_name_takes_its_whole_geometry():
    cfg = apply_overrides(get_preset("tiny"), ["model.name=mae_vit_large_patch16", "model.encoder.depth=2"])
    assert (cfg.model.encoder.embed_dim, cfg.model.encoder.depth, cfg.model.encoder.img_size) == (1024, 2, 224)
    again = from_dict(PretrainConfig, cfg.to_dict())
    assert again.model == cfg.model
    ft = from_dict(FinetuneConfig, get_finetune_preset("demo_finetune").to_dict())
    assert ft.model.encoder.img_size == 64


def test_init_falls_back_to_the_recipe_only_for_weights_without_a_config(tmp_path):
    """A bare state dict is taken as the recipe's encoder; a maest file whose config cannot be read is
    an error, never silently treated as bare weights."""
    from maest.train.finetune import _init_weights

    cfg = get_finetune_preset("tiny_finetune")
    cfg.init = str(ckpt.atomic_save({"model": create_model("tiny").state_dict()}, tmp_path / "bare.pt"))
    assert "patch_embed.proj.weight" in _init_weights(cfg)
    mae = model_config("tiny")
    record = ckpt.model_record(mae.build().state_dict(), "mae", dataclasses.asdict(mae))
    record["model_config"]["encoder"]["depht"] = 3  # a damaged config
    cfg.init = str(ckpt.atomic_save(record, tmp_path / "damaged.pt"))
    with pytest.raises(ValueError, match="unknown keys"):
        _init_weights(cfg)
