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


def test_decoded_frames_keep_the_decoders_layout_and_are_copies():
    """A gather from memory gives what the decoder gives: the same values, channels-last (the layout torch's
    fast uint8 resize needs), and a copy, so a caller that writes into it cannot change the stored video."""
    from maest.data.memory import DecodedVideo

    gen = torch.Generator().manual_seed(0)
    nchw = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8, generator=gen)
    for stored in (nchw.contiguous(memory_format=torch.channels_last), nchw):  # a decoder's layout, and a plain one
        video = DecodedVideo("v.mp4", stored, 25.0)
        got = video.get_frames([4, 0, 4, 2])
        assert torch.equal(got, nchw[[4, 0, 4, 2]])
        assert got.is_contiguous(memory_format=torch.channels_last)
        got.zero_()
        assert torch.equal(video.frames, nchw)
