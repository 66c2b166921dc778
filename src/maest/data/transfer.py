"""How clips travel from the loader to the model (``data.transfer``), and the one step every job that
consumes batches takes to put them on its device (:class:`DeviceInput`: pre-training, fine-tuning and its
validation, ``maest test``, ``maest extract``, ``maest predict``).

- ``float32`` (the default): each clip is normalised on the host, as always, and travels as float32, 4 bytes
  a value (a 16 x 224 x 224 clip: 9.6 MB) through worker, shared memory, pinned memory and the GPU's copy.
  The default because it is exact: the numbers every earlier run and every golden test saw.
- ``uint8``: clips travel as uint8 (B, C, T, H, W), 1 byte a value (2.4 MB a clip, 4x less), and are
  normalised on the device, with the statistics made there once per job, never copied per clip. An opt-in
  recipe choice, since the numbers can change: the host pipeline stays integer where it is integer and
  rounds once where it computes in float, to the nearest grey level (at most 0.5 of 255, i.e. 0.5 / (255
  std) = 0.0087 in normalised units for std 0.225):

  - pre-training and val/test clips decoded on the CPU: nothing is rounded (crop, uint8 resize, flip and
    uniform crops are integer already), and the normalised clips are bit-identical to ``float32``'s;
  - fine-tuning: RandAugment computes in float; its output is rounded once, before transfer;
  - clips decoded on a GPU (``data.decode_device=cuda``): the float resize there is rounded once (with
    RandAugment after it, once at the end);
  - random erasing (fine-tuning) writes N(0, 1) noise in normalised units, which no uint8 value holds: its
    box and noise travel beside the clip (``"erase"`` (r, 4) top/left/h/w, h=0 for none, and
    ``"erase_noise"``, the boxes' values flat) and are written after normalisation, exactly as on the host.
    They add 4 bytes per erased value: on average p x 0.18 of the clip (0.04 at the default p=0.25).
"""

from __future__ import annotations

from typing import Any

import torch

from maest.data import transforms as T

TRANSFERS = ("float32", "uint8")


def check_transfer(value: str, name: str = "data.transfer") -> str:
    """``value`` if it is a transfer, else a one-line ValueError."""
    if value not in TRANSFERS:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(TRANSFERS)} (float32: normalised on the host, "
                         "exact; uint8: 4x fewer bytes, normalised on the device)")
    return value


def erase_fields(draws: list[tuple[tuple[int, int, int, int], torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """An item's random-erasing draws (:func:`maest.data.transforms.erase_draw`, one per clip) as the tensors
    that travel beside a uint8 clip: ``erase`` (r, 4) int64 and ``erase_noise`` (values,) float32."""
    boxes = torch.tensor([d[0] if d is not None else (0, 0, 0, 0) for d in draws], dtype=torch.long).view(-1, 4)
    noise = [d[1].flatten() for d in draws if d is not None]
    return {"erase": boxes, "erase_noise": torch.cat(noise) if noise else torch.zeros(0)}


def _spec_of(dataset: Any) -> Any:
    """The :class:`~maest.data.datasets.ClipSpec` of a dataset or of the one it wraps; None without one."""
    for obj in (dataset, getattr(dataset, "dataset", None)):
        spec = getattr(obj, "spec", None)
        if spec is not None and hasattr(spec, "mean"):
            return spec
    return None


class DeviceInput:
    """Batches' clips on ``device``, ready for the model: float32 batches are moved as they are (bit for bit
    what the jobs did before); uint8 batches are moved, then normalised there with ``mean`` / ``std`` made
    on the device once, here, and random erasing's boxes written (see the module note)."""

    def __init__(self, device: str | torch.device, mean: tuple[float, ...] = T.MEAN,
                 std: tuple[float, ...] = T.STD) -> None:
        self.device = torch.device(device)
        self.mean, self.std = tuple(mean), tuple(std)
        self._stats: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def of(cls, dataset: Any, device: str | torch.device, fallback: Any = None) -> DeviceInput:
        """The input step for ``dataset``'s batches: its spec's statistics (those the host would normalise
        with), else ``fallback``'s (an ``EncoderConfig``: ``.mean`` / ``.std``), else MAE-ST's."""
        src = _spec_of(dataset) or fallback
        if src is None or getattr(src, "mean", None) is None:
            return cls(device)
        return cls(device, src.mean, src.std)

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """255 mean and 255 std, (C, 1, 1, 1) float32 on the device: made on first use, then kept."""
        if self._stats is None:
            self._stats = T._scaled_stats(self.mean, self.std, self.device)
        return self._stats

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        video = batch["video"].to(self.device, non_blocking=True)
        if video.dtype != torch.uint8:
            return video
        m, s = self.stats()
        x = video.float().sub_(m).div_(s)  # the host's normalize, op for op: the same float32 values
        if "erase" in batch:
            self._erase(x, batch["erase"], batch["erase_noise"])
        return x

    def _erase(self, x: torch.Tensor, boxes: torch.Tensor, noise: torch.Tensor) -> None:
        """Write each clip's erased box (``boxes`` stays on the host: reading it costs the GPU nothing)."""
        C, Tn = x.shape[1:3]
        noise = noise.to(self.device, non_blocking=True)
        offset = 0
        for i, (top, left, h, w) in enumerate(boxes.tolist()):
            if h:
                n = C * Tn * h * w
                x[i, :, :, top:top + h, left:left + w] = noise[offset:offset + n].view(C, Tn, h, w)
                offset += n
