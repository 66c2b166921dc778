import torch

from maest.train.losses import classification_loss, soft_target_cross_entropy
from maest.train.mixup import MixupConfig, cutmix_box, smooth_one_hot


def test_smooth_one_hot_rows_sum_to_one():
    y = smooth_one_hot(torch.tensor([0, 2]), 4, smoothing=0.1)
    torch.testing.assert_close(y.sum(1), torch.ones(2))
    assert y[0, 0] == 1 - 0.1 + 0.1 / 4 and y[0, 1] == 0.1 / 4


def test_mixup_targets_sum_to_one_and_pair_with_flipped_batch():
    m = MixupConfig(mixup=0.8, cutmix=0.0, smoothing=0.0).build(4)
    x = torch.randn(4, 3, 2, 8, 8)
    labels = torch.tensor([0, 1, 2, 3])
    mixed, y = m(x, labels, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y.sum(1), torch.ones(4))
    lam = y[0, 0].item()
    torch.testing.assert_close(y[0, 3], torch.tensor(1 - lam))  # sample 0 is mixed with sample 3
    torch.testing.assert_close(mixed, x * lam + x.flip(0) * (1 - lam))


def test_cutmix_box_is_shared_across_frames_and_lam_matches_area():
    m = MixupConfig(mixup=0.0, cutmix=1.0, smoothing=0.1).build(5)
    x = torch.randn(4, 3, 4, 16, 16)
    for seed in range(5):
        mixed, y = m(x, torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(seed))
        torch.testing.assert_close(y.sum(1), torch.ones(4))
        changed = (mixed != x).any(dim=1)  # (B, T, H, W)
        for t in range(1, 4):
            assert torch.equal(changed[:, t], changed[:, 0])  # same box in every frame
        pasted = (mixed == x.flip(0)).all(dim=1).all(dim=1)[0].float().mean().item()  # box area of sample 0
        lam = 1 - pasted
        off = 0.1 / 5
        torch.testing.assert_close(y[0, 0], torch.tensor(lam * (1 - 0.1 + off) + (1 - lam) * off), atol=1e-5, rtol=0)


def test_cutmix_box_stays_inside_the_frame():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        y0, y1, x0, x1 = cutmix_box(12, 20, 0.3, g)
        assert 0 <= y0 <= y1 <= 12 and 0 <= x0 <= x1 <= 20


def test_mixing_is_reproducible_from_the_generator():
    m = MixupConfig().build(3)
    x = torch.randn(2, 3, 2, 8, 8)
    a = m(x, torch.tensor([0, 1]), torch.Generator().manual_seed(7))
    b = m(x, torch.tensor([0, 1]), torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_soft_target_ce_equals_ce_for_one_hot_and_smoothing():
    logits = torch.randn(5, 7)
    labels = torch.randint(7, (5,))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(soft_target_cross_entropy(logits, smooth_one_hot(labels, 7)), ce)
    smoothed = classification_loss(logits, labels, smoothing=0.1)
    torch.testing.assert_close(soft_target_cross_entropy(logits, smooth_one_hot(labels, 7, 0.1)), smoothed)
