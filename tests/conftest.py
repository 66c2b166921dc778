from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "mae_st_reference_tiny.pt"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="marked gpu: needs a CUDA GPU, and torch sees none")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request, monkeypatch):
    """Tests run on the CPU, on a GPU machine too, unless marked ``gpu``: there CUDA looks absent, so
    ``device=auto`` (and ``precision=auto``) resolve as on a CPU machine and the numbers the tests pin,
    bit-exact resumes included, stay the CPU's. Subprocesses a test starts pin the device themselves."""
    if request.node.get_closest_marker("gpu") is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def video() -> torch.Tensor:
    """A batch matching the tiny model: (2, 3, 4, 32, 32)."""
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


class RandomClips(Dataset):
    """In-memory clips: a fixed base clip per index plus a random jitter drawn from the global RNG,
    standing in for random augmentation (so tests see whether RNG seeding is reproducible)."""

    def __init__(self, n: int = 8, repeat: int = 2, frames: int = 4, size: int = 32) -> None:
        self.n, self.repeat, self.shape = n, repeat, (3, frames, size, size)
        self.classes = ["c0", "c1", "c2"]  # labels are i % 3: a classifier's num_classes 0 becomes 3

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        base = torch.randn(self.shape, generator=torch.Generator().manual_seed(i))
        clips = torch.stack([base + 0.1 * torch.randn(self.shape) for _ in range(self.repeat)])
        return {"video": clips, "label": torch.full((self.repeat,), i % 3), "index": torch.full((self.repeat,), i),
                "skipped": []}


@pytest.fixture
def random_clips() -> RandomClips:
    return RandomClips()


@pytest.fixture
def no_curves(monkeypatch):
    """For runs that are about files and messages: skip the end-of-run matplotlib figure (seconds each).
    Apply with ``pytestmark = pytest.mark.usefixtures("no_curves")``."""
    import maest.train.loop

    monkeypatch.setattr(maest.train.loop, "write_run_curves", lambda run_dir: None)


@pytest.fixture
def fake_data(monkeypatch):
    """CLI training commands read RandomClips instead of videos."""
    import maest.train.finetune as ft
    import maest.train.pretrain as pre

    real_pre, real_ft = pre.run, ft.run
    monkeypatch.setattr(pre, "run", lambda cfg: real_pre(cfg, dataset=RandomClips()))
    monkeypatch.setattr(ft, "run", lambda cfg: real_ft(cfg, dataset=RandomClips()))
