import json

import pytest
import torch

from maest.bench.step import forward_flops, summarize
from maest.cli import main
from maest.models import create_model


def test_flop_count_matches_hand_count_for_base():
    # ViT-B MAE-ST, 16x224, decoder 512x4: the reference's FlopCounterMode measured 92.3 G at 0.9 masking
    # and 423.1 G at 0.0 (official_maest.md section 8); attention is counted by hand here
    model = create_model("base")
    assert forward_flops(model, 0.9) / 1e9 == pytest.approx(92.3, rel=0.01)
    assert forward_flops(model, 0.5 / model.num_patches) / 1e9 == pytest.approx(423.1, rel=0.01)
    # maest projects only the 156 visible patches: 2 * (1568 - 156) * 768 * 1536 fewer FLOPs
    saved = forward_flops(model, 0.9) - forward_flops(model, 0.9, embed_all=False)
    assert saved == 2 * (1568 - 156) * 768 * 1536


def test_bench_command_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--", "--models", "tiny", "--reference", "tiny", "--precisions", "fp32",
                 "--steps", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {r["mode"] for r in report["results"]} == {"reference", "maest"}
    assert {r["mask"] for r in report["results"]} == {0.9, 0.0}
    row = report["results"][0]
    for key in ("s_per_step", "clips_per_s", "gflop_per_step", "achieved_gflops", "pct_of_peak", "peak_mem_gib"):
        assert row[key] > 0, key
    assert report["peaks_gflops"]["fp32"] > 0
    assert any("masking speedup" in line for line in report["summary"])
    assert "s/step" in capsys.readouterr().out


def test_summary_speedups():
    rows = [dict(model="b", mode=m, mask=k, precision=p, compile=False, s_per_step=t)
            for m, k, p, t in [("reference", 0.9, "fp32", 6.0), ("maest", 0.9, "bf16", 2.0),
                               ("reference", 0.0, "fp32", 30.0), ("maest", 0.0, "bf16", 12.0)]]
    text = "\n".join(summarize(rows))
    assert "b mask 0.9: maest (bf16) 2.00 s/step vs reference 6.00 s/step: 3.0x" in text
    assert "b maest bf16: masking speedup 0.9 vs 0.0 = 6.0x" in text


def test_side_by_side_pairs_every_mode(tmp_path):
    from maest.bench.step import side_by_side

    r = side_by_side("tiny", 0.75, rounds=2, batch=1, device="cpu")
    assert set(r["s_per_step"]) == {"reference", "maest-bf16", "maest-fp32"}
    assert all(len(v) == 2 and min(v) > 0 for v in r["times"].values())
    assert set(r["speedup_vs_reference"]) == {"maest-bf16", "maest-fp32"}


@pytest.mark.slow
def test_trainer_rows_time_the_package_trainer_beside_the_bare_step(capsys):
    """``maest bench --trainer``: the trainer (in memory) and the bare step of the same model, one row; with
    ``--trainer-cache`` a second, the trainer reading the files through ``data.cache=memory``."""
    from maest.cli import main

    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--models", "tiny", "--trainer", "1", "--steps", "12", "--precisions", "fp32",
                     "--batch", "4", "--trainer-cache"]) == 0
    finally:
        torch.set_num_threads(threads)
    memory, cached = capsys.readouterr().out.strip().splitlines()[-2:]
    for line, source in ((memory, "memory"), (cached, "cached")):
        assert line.startswith(f"tiny     {source}") and "bare" in line and "trainer" in line and "x)" in line


def test_the_step_module_refuses_trainer_rows_in_one_line():
    from maest.bench.step import run

    with pytest.raises(ValueError, match="maest bench --trainer"):
        run(["--trainer", "1"])


def test_trainer_rows_with_repeated_sampling_step_on_the_same_clips(capsys, monkeypatch):
    """``--trainer-repeat-aug 2``: the trainer decodes batch / 2 videos of 2 clips, the bare step's batch;
    ``--trainer-videos`` sizes its set (so its epochs, and checkpoints, come as often as in a real run)."""
    from maest.bench import trainer
    from maest.cli import main

    drawn = []
    real = trainer.write_moving_digits
    monkeypatch.setattr(trainer, "write_moving_digits",
                        lambda *a, **kw: drawn.append(kw["num_videos"]) or real(*a, **kw))
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--models", "tiny", "--trainer", "1", "--steps", "12", "--precisions", "fp32",
                     "--batch", "4", "--trainer-repeat-aug", "2", "--trainer-videos", "10",
                     "--trainer-transfer", "uint8"]) == 0
        assert main(["bench", "--models", "tiny", "--trainer", "1", "--precisions", "fp32", "--batch", "4",
                     "--trainer-repeat-aug", "3"]) == 2
        assert main(["bench", "--models", "tiny", "--trainer", "1", "--precisions", "fp32", "--batch", "4",
                     "--trainer-repeat-aug", "2", "--trainer-videos", "1"]) == 2
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr()
    assert drawn == [10]
    assert "repeat 2" in out.out.strip().splitlines()[-1] and "videos 10 uint8" in out.out
    assert "--trainer-repeat-aug 3 must be >= 1 and divide --batch 4" in out.err
    assert "--trainer-videos 1 must hold at least one batch of 2 videos" in out.err


def test_feature_target_row_distills_a_random_init_teacher():
    from maest.bench.step import time_step

    row = time_step("tiny", 0.75, "fp32", False, "maest", batch=2, steps=1, warmup=0, device="cpu", target="features")
    assert row["target"] == "features" and row["s_per_step"] > 0


@pytest.mark.parametrize("rule", ["warp", "magnitude"])
def test_a_motion_masked_step_times_its_masks_inside_the_step(rule, monkeypatch):
    """``--motion-rules``: the step masks by motion (the synthetic pan through motion_noise), and the
    masks it draws are motion masks, not random ones."""
    from maest.bench import motion_step
    from maest.bench.step import time_step

    calls = []
    real = motion_step.motion_noise

    def counted(*args, **kwargs):
        calls.append(args[-1] if len(args) > 6 else kwargs.get("rule"))
        return real(*args, **kwargs)

    monkeypatch.setattr(motion_step, "motion_noise", counted)
    row = time_step("tiny", 0.75, "fp32", False, "maest", batch=2, steps=2, warmup=1, device="cpu", motion_rule=rule)
    assert row["motion_rule"] == rule and row["s_per_step"] > 0
    assert calls == [rule] * 3  # one mask per timed or warm-up step


def test_the_synthetic_pan_moves_every_clip_its_own_way():
    from maest.bench.motion_step import synthetic_motion

    field = synthetic_motion(4, 8, 32, "cpu")
    assert field.shape == (4, 8, 2, 8, 8)
    steps = field[:, 0, :, 0, 0]
    assert torch.allclose(steps.norm(dim=1), torch.full((4,), 3.0)) and len({tuple(s.tolist()) for s in steps}) == 4
