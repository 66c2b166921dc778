"""InMemoryClips: decoded once, the same items as from files, broken videos left out and counted."""

import torch

from maest.data import ClipSpec, VideoClipDataset, corrupt_copy, read_csv_list
from maest.data.memory import InMemoryClips


def test_in_memory_items_equal_file_items(digits, tmp_path):
    items = read_csv_list(digits["train"])[:3]
    broken = corrupt_copy(items[0][0], tmp_path / "broken.mp4", mode="garbage")
    spec = ClipSpec(mode="pretrain", num_frames=4, sampling_rate=2, crop_size=32, repeat=2, seed=5)
    files = VideoClipDataset(items + [(str(broken), 0)], spec)
    memory = InMemoryClips(files)
    assert len(memory) == 3 and len(memory.skipped) == 1 and "broken.mp4" in memory.skipped[0]
    for i in range(3):
        a, b = files[i], memory[i]
        torch.testing.assert_close(a["video"], b["video"], rtol=0, atol=0)
        assert torch.equal(a["index"], b["index"])
