"""``maest test`` on the checkpoint of a run that decoded on the GPU (``data.decode_device=cuda``): on a
machine without one, and with loader workers, it decodes on the CPU instead of failing or counting every
video as failed."""

from __future__ import annotations

import dataclasses

import torch

from maest.data import write_test_pattern
from maest.eval.test import run_test
from maest.models import create_model
from maest.runs import checkpoint as ckpt


def test_a_gpu_decoded_run_is_tested_with_cpu_decoding_in_workers(tmp_path):
    files = [write_test_pattern(tmp_path / f"v{i}.mp4", 48, 40, num_frames=24, seed=i) for i in range(2)]
    (tmp_path / "test.csv").write_text("".join(f"{f} {i}\n" for i, f in enumerate(files)))
    torch.manual_seed(0)
    model = create_model("vit_tiny_test", num_classes=2, dropout=0.0)
    config = {"data": {"sampling_rate": 2, "decode_device": "cuda", "num_workers": 0}, "mix": {}, "model": {}}
    path = tmp_path / "run" / "checkpoint-00000010.pt"
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), "classifier", dataclasses.asdict(model.model_cfg),
                                       config=config), path)
    result = run_test(path, str(tmp_path / "test.csv"), tmp_path / "out", clips=1, crops=1, batch_size=2,
                      num_workers=1, device="auto")
    assert result["videos"] == 2 and result["failed_videos"] == 0
