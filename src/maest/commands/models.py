"""``maest models``: registered model names and presets; ``--verbose`` shows each one's geometry, parameters
and what it is for. The tiny presets are listed apart: they are smoke tests, which learn nothing."""

from __future__ import annotations

import argparse
from typing import Any


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="", help="only names containing this")
    p.add_argument("--verbose", dest="table", action="store_true",
                   help="a table: geometry, parameters and purpose of every model and preset")


def main(args: argparse.Namespace) -> int:
    from maest.models import list_models
    from maest.train.recipes import SMOKE_TESTS, finetune_preset, pretrain_preset

    pre = [n for n in pretrain_preset.names() if args.pattern in n]
    ft = [n for n in finetune_preset.names() if args.pattern in n]
    if args.table:
        print(_table(args.pattern, pre, ft))
        return 0
    print("models:  " + " ".join(list_models(args.pattern)))
    print("presets: " + " ".join(n for n in pre if n not in SMOKE_TESTS))
    print("fine-tuning presets: " + " ".join(n for n in ft if n not in SMOKE_TESTS))
    smoke = [n for n in (*pre, *ft) if n in SMOKE_TESTS]
    if smoke:
        print("smoke tests (tiny models that learn nothing; they check that a setup runs): " + " ".join(smoke))
    print("(maest models --verbose: the geometry, parameters and purpose of each)")
    return 0


def _table(pattern: str, pre: list[str], ft: list[str]) -> str:
    """Rows of (name, geometry, parameters, purpose) for the models and presets matching ``pattern``."""
    from maest.models import list_models, model_config
    from maest.models.registry import about, canonical
    from maest.train.recipes import finetune_preset, pretrain_preset

    names = [n for n in list_models(pattern) if canonical(n) == n]  # aliases are listed with their model
    rows = [("MODEL", "GEOMETRY", "PARAMS", "FOR")]
    rows += [(n, *_shape(model_config(n)), about(n)) for n in names]
    rows += [("", "", "", ""), ("PRESET", "", "", "")]
    rows += [(n, *_shape(pretrain_preset.get(n).model), pretrain_preset.about(n)) for n in pre]
    rows += [(n, *_shape(finetune_preset.get(n).model), finetune_preset.about(n)) for n in ft]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {_short(r[3])}".rstrip()
                     for r in rows)


def _shape(cfg: Any) -> tuple[str, str]:
    """(geometry, parameter count) of a model config, counted on the meta device (nothing is allocated).
    A classifier whose class count comes from the data is counted without its head."""
    import copy

    import torch

    from maest.models.factory import count

    e = cfg.encoder
    geometry = (f"{'MAE' if cfg.kind == 'mae' else 'ViT'} {e.embed_dim}x{e.depth}, {e.num_frames}x{e.img_size}px, "
                f"patch {e.t_patch_size}x{e.patch_size}")
    head = getattr(cfg, "num_classes", 1) == 0
    if head:
        cfg = copy.deepcopy(cfg)
        cfg.num_classes = 1
    target = getattr(cfg, "target", None)
    teacher = target is not None and target.kind == "features" and not target.teacher_dim
    if teacher:  # the decoder's output width is the teacher's, known once a teacher is given
        cfg = copy.deepcopy(cfg)
        cfg.target.teacher_dim = 1
    with torch.device("meta"):
        n = sum(p.numel() for p in cfg.build().parameters())
    if teacher:
        return geometry, count(n - cfg.decoder.embed_dim - 1) + " + teacher-wide head"
    return geometry, count(n - (e.embed_dim + 1 if head else 0)) + (" + head" if head else "")


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3].rsplit(" ", 1)[0] + " ..."
