"""Host reads of device values in the pre-training step, counted on the CPU.

On a GPU every read of a value the GPU computed (``.item()``, ``bool()``, ``float()``, ``.tolist()``, a
data-dependent shape such as ``nonzero``) waits for the GPU: ``torch.cuda.set_sync_debug_mode`` flags them.
Here that is emulated: a dispatch mode follows which tensors would live on the device (the model's
parameters, the batch's clips and the masking noise once moved there, and everything computed from them)
and records each read of one, with the loop function it came from; host data made into a device tensor
(``torch.tensor(..., device=...)``, a blocking copy from pageable memory) counts too. The non-finite guard is put in its
deferred mode (as on a GPU or with several processes)."""

from __future__ import annotations

import math
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

import maest.train.pretrain as pre
from maest import runtime
from maest.train import loop
from maest.train.recipes import get_preset

from ..conftest import RandomClips

pytestmark = pytest.mark.usefixtures("no_curves")

aten = torch.ops.aten
# what reads a value back (item/bool/float/int go through _local_scalar_dense) or sizes its output by it
READS = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default, aten.nonzero.default,
         aten.masked_select.default, aten._unique2.default, aten.unique_dim.default, aten.bincount.default,
         aten.repeat_interleave.Tensor}
LOOP_FILE = Path(loop.__file__).name


class DeviceReads(TorchDispatchMode):
    """Records host reads of "device" tensors: those marked, and every output of an op with a marked input."""

    def __init__(self) -> None:
        super().__init__()
        self.on_device = WeakTensorKeyDictionary()
        self.reads: list[str] = []  # the loop function each read came from

    def mark(self, *tensors: torch.Tensor) -> None:
        for t in tensors:
            self.on_device[t] = True

    def is_marked(self, t) -> bool:
        return isinstance(t, torch.Tensor) and t in self.on_device

    def record(self, what: str) -> None:
        frames = [f for f in traceback.extract_stack() if Path(f.filename).name == LOOP_FILE]
        self.reads.append(frames[-1].name if frames else what)

    def __enter__(self):
        # tolist() and numpy() read memory without an op the dispatcher sees
        self._real = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
        for name, real in self._real.items():
            setattr(torch.Tensor, name, self._reader(name, real))
        # host data made into a device tensor (torch.tensor(..., device=...)) is a blocking copy on a GPU
        self._factories = {name: getattr(torch, name) for name in ("tensor", "as_tensor")}
        for name, real in self._factories.items():
            setattr(torch, name, self._copier(name, real))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, real in self._real.items():
            setattr(torch.Tensor, name, real)
        for name, real in self._factories.items():
            setattr(torch, name, real)
        return super().__exit__(*exc)

    def _copier(self, name, real):
        def make(data, *args, **kwargs):
            out = real(data, *args, **kwargs)
            if kwargs.get("device") is not None:
                self.record(f"{name}(device=)")
                self.mark(out)
            return out

        return make

    def _reader(self, name, real):
        def read(t, *args, **kwargs):
            if self.is_marked(t):
                self.record(name)
            return real(t, *args, **kwargs)

        return read

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        marked = any(self.is_marked(t) for t in flat)
        if marked and func in READS:
            self.record(str(func))
        out = func(*args, **(kwargs or {}))
        if marked:
            self.mark(*(t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)))
        return out


@pytest.fixture
def deferred_guard(monkeypatch):
    """The guard as it runs on a GPU or across ranks: losses kept on the device, checked at log steps."""
    class Deferred(loop.NonFiniteGuard):
        def __init__(self, info, out_dir):
            super().__init__(info, out_dir)
            self.eager = False

    monkeypatch.setattr(loop, "NonFiniteGuard", Deferred)


def _cfg(tmp_path, **train):
    cfg = get_preset("tiny")
    t = cfg.train
    t.output_dir, t.progress, t.tensorboard, t.device, t.batch_size, t.accum_iter = str(tmp_path), False, False, \
        "cpu", 1, 2
    t.epochs, t.max_steps, t.log_every, t.keep_checkpoints = 1, 4, 2, 0
    cfg.optim.clip_grad = 1.0  # clipping must not read the norm back either
    for k, v in train.items():
        setattr(t, k, v)
    return cfg


def test_no_host_reads_per_micro_batch_only_at_log_steps(tmp_path, monkeypatch, deferred_guard):
    counter = DeviceReads()
    real_batches, real_to_device, real_log = loop.open_batches, runtime.to_device, loop.log_step
    events: list[tuple[str, int]] = []  # (what, reads so far)

    def batches(run, seeded, step):
        for batch in real_batches(run, seeded, step):
            counter.mark(batch["video"])  # moved to the device by the step; "index" stays on the host
            events.append(("micro", len(counter.reads)))
            yield batch

    def to_device(x, device):
        out = real_to_device(x, device)
        counter.mark(out)
        return out

    def log_step(run, meter, step, lr, grad_norm):
        events.append((f"log {step}", len(counter.reads)))
        return real_log(run, meter, step, lr, grad_norm)

    monkeypatch.setattr(loop, "open_batches", batches)
    monkeypatch.setattr(pre, "to_device", to_device)
    monkeypatch.setattr(loop, "log_step", log_step)
    real_train = pre.train

    def train(cfg, model, *args, **kwargs):
        counter.mark(*model.parameters(), *model.buffers())
        with counter:
            return real_train(cfg, model, *args, **kwargs)

    monkeypatch.setattr(pre, "train", train)
    summary = pre.run(_cfg(tmp_path / "run"), dataset=RandomClips(n=8))
    assert summary["steps"] == 4
    micro = [n for what, n in events if what == "micro"]
    assert len(micro) == 8  # 4 steps x 2 micro-batches
    # between micro-batches of a step, and from a log step to the next micro-batch: no reads
    assert all(b - a == 0 for a, b in zip(micro[0::2], micro[1::2], strict=True)), counter.reads
    # every read is the guard's check or the log line, at steps 2 and 4 (log_every=2), and the end of the epoch
    assert set(counter.reads) <= {"check", "log_step"}, counter.reads
    assert counter.reads.count("check") == 3  # steps 2, 4 and the epoch end
    assert counter.reads.count("log_step") == 2 * 2  # the mean loss and the clipped grad norm, per log line


def test_the_counter_sees_a_read_per_micro_batch_in_the_eager_guard(tmp_path, monkeypatch):
    """The emulation is not blind: the CPU-alone (eager) guard reads every loss back."""
    counter = DeviceReads()
    real_train = pre.train

    def train(cfg, model, *args, **kwargs):
        counter.mark(*model.parameters())
        with counter:
            return real_train(cfg, model, *args, **kwargs)

    monkeypatch.setattr(pre, "train", train)
    pre.run(_cfg(tmp_path / "run", log_every=100), dataset=RandomClips(n=8))
    assert counter.reads.count("watch") == 8


def test_deferred_guard_names_the_first_bad_step_in_one_line(tmp_path):
    guard = loop.NonFiniteGuard(runtime.DistInfo(), tmp_path)
    guard.eager = False
    losses = {0: 1.0, 1: 2.0, 2: math.nan, 3: 0.5, 4: math.inf}
    for step, value in losses.items():
        guard.watch(torch.tensor(value), step, epoch=step // 2)  # no read, no raise while training goes on
    with pytest.raises(FloatingPointError) as err:
        guard.check()
    message = str(err.value)
    assert "\n" not in message and "at step 2 (epoch 1)" in message and "lower optim.blr" in message


def test_deferred_guard_stops_a_run_at_the_next_log_step_naming_the_bad_one(tmp_path, monkeypatch, deferred_guard):
    real_loss = pre.mae_loss
    calls = []

    def nan_at_step_1(model, video, *args, **kwargs):
        calls.append(1)
        loss = real_loss(model, video, *args, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss  # micro-batch 3: step 1 with accum_iter=2

    monkeypatch.setattr(pre, "mae_loss", nan_at_step_1)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 1 \(epoch 0\)"):
        pre.run(_cfg(tmp_path / "run", log_every=3), dataset=RandomClips(n=8))
    assert len(calls) == 6  # it trained on to the log step (step 3 ends at micro-batch 6), then stopped
