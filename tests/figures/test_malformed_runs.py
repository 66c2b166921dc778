"""Issue 21 §5: ``maest report`` on a run folder whose files are malformed (a metrics line with a null loss,
a config.json of the wrong shape or types, results with text where numbers belong) writes the page and
says what it skipped, instead of a traceback."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")

from maest.cli import main  # noqa: E402
from maest.figures.run_folder import metric_rows, read_run  # noqa: E402
from maest.train.recipes import get_preset  # noqa: E402

GOOD = [{"step": s, "time": 1000.0 + s, "loss": 1.0 / s, "lr": 1e-3, "epoch": s / 4, "clips_per_s": 5.0}
        for s in (1, 2, 3)]
CASES = {  # name: (file, content replacing it, or a line appended to metrics.jsonl)
    "null loss": ("metrics.jsonl", '{"step": 4, "loss": null}'),
    "text loss": ("metrics.jsonl", '{"step": 4, "loss": "x", "epoch": 1}'),
    "text step": ("metrics.jsonl", '{"step": "4", "loss": 1.0}'),
    "null step": ("metrics.jsonl", '{"step": null, "loss": 1.0}'),
    "text time": ("metrics.jsonl", '{"step": 4, "loss": 1.0, "time": "noon"}'),
    "null val": ("metrics.jsonl", '{"step": 4, "val_top1": null, "val_top5": 3}'),
    "text skipped": ("metrics.jsonl", '{"step": 4, "skipped_videos": "x", "epoch_end": 0}'),
    "config list": ("config.json", "[1, 2]"),
    "config epochs text": ("config.json", '{"train": {"epochs": "abc"}}'),
    "config section int": ("config.json", '{"train": [], "model": 3}'),
    "config max_steps text": ("config.json", '{"train": {"epochs": 2, "max_steps": "5"}}'),
    "results text": ("results.json", '{"confusion": [[1]], "top1": "x", "top5": null}'),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_malformed_run_file_is_reported_not_a_traceback(tmp_path, capsys, name):
    (tmp_path / "config.json").write_text(json.dumps(get_preset("tiny").to_dict()))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    file, content = CASES[name]
    if file == "metrics.jsonl":
        with open(tmp_path / file, "a") as f:
            f.write(content + "\n")
    else:
        (tmp_path / file).write_text(content)
    run = read_run(tmp_path)
    assert run.missing and any(file in m or "line" in m for m in run.missing), run.missing
    assert [r["step"] for r in run.parts["train"]] == [1, 2, 3]  # the good records are all kept
    metric_rows(run)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 0, capsys.readouterr().err
    assert (tmp_path / "r.html").stat().st_size > 1000
