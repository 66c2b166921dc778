import torch
from PIL import Image

from maest.eval.test import (
    ViewAccumulator,
    confusion_matrix,
    per_class_accuracy,
    predict_views,
    summarize,
    topk_accuracy,
    write_report,
)


def test_views_are_averaged_per_video():
    acc = ViewAccumulator(num_videos=2, num_classes=3)
    # video 0: two views that disagree; their mean favours class 1
    acc.add(torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.9, 0.1]]), torch.tensor([0, 0]), torch.tensor([1, 1]))
    acc.add(torch.tensor([[0.2, 0.2, 0.6]]), torch.tensor([1]), torch.tensor([2]))
    scores, labels, idx = acc.mean_scores()
    torch.testing.assert_close(scores[0], torch.tensor([0.3, 0.65, 0.05], dtype=torch.float64))
    assert labels.tolist() == [1, 2] and idx.tolist() == [0, 1]
    assert topk_accuracy(scores, labels, (1,))[1] == 1.0


def test_topk_and_confusion_on_a_hand_made_example():
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 1, 2, 2])
    top = topk_accuracy(scores, labels, (1, 2, 5))
    assert top[1] == 0.5 and top[2] == 1.0 and top[5] == 1.0
    cm = confusion_matrix(scores.argmax(1), labels, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert per_class_accuracy(cm) == [1.0, 0.0, 0.5]
    assert per_class_accuracy(confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2)) == [1.0, None]


class _Views(torch.utils.data.Dataset):
    """3 videos x 2 views; video 1 cannot be decoded."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        from maest.data.decode import VideoDecodeError

        if i == 1:
            raise VideoDecodeError("broken.mp4", "truncated")
        v = torch.zeros(2, 4)
        v[:, i] = 1.0
        return {"video": v, "label": torch.full((2,), i)}


def test_predict_views_records_failed_videos_and_writes_reports(tmp_path):
    model = torch.nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3, 4) * 5)
    acc, failed = predict_views(model, _Views(), 3, batch_size=2)
    assert len(failed) == 1 and "broken.mp4" in failed[0]
    res = summarize(acc, failed, ["a", "b", "c"])
    assert res["videos"] == 2 and res["failed_videos"] == 1 and res["top1"] == 100.0
    assert res["views_per_video"] == 2.0 and res["per_class"] == {"a": 1.0, "b": None, "c": 1.0}
    paths = write_report(res, tmp_path)
    assert paths["csv"].read_text().splitlines()[1] == "a,1,0,0"
    assert Image.open(paths["png"]).size[0] > 3 * 28
