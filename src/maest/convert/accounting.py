"""Key bookkeeping for converters: take source tensors by name, and fail loudly if any source key
is left unconsumed or any target key unfilled (no silent ``strict=False``)."""

from __future__ import annotations

import torch


class ConversionError(ValueError):
    """A checkpoint does not convert cleanly: keys left over or missing, or shapes that do not fit."""


class KeyMap:
    """Consumes a source state dict while a converter builds the target one."""

    def __init__(self, source: dict[str, torch.Tensor], what: str) -> None:
        self.source = dict(source)
        self.what = what
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}

    def has(self, key: str) -> bool:
        return key in self.source

    def take(self, key: str) -> torch.Tensor:
        if key not in self.source:
            raise ConversionError(f"{self.what}: expected key {key!r} is missing from the checkpoint")
        self.used.add(key)
        return self.source[key]

    def put(self, key: str, value: torch.Tensor) -> None:
        self.out[key] = value

    def move(self, src: str, dst: str) -> None:
        self.put(dst, self.take(src))

    def skip(self, key: str) -> None:
        """Consume a key that deliberately has no counterpart (say why at the call site)."""
        if key in self.source:
            self.used.add(key)

    def consumed(self) -> dict[str, torch.Tensor]:
        """The produced state dict, once every source key has been used (else ConversionError)."""
        left = sorted(set(self.source) - self.used)
        if left:
            raise ConversionError(f"{self.what}: {len(left)} source keys not converted: {left[:8]}")
        return self.out

    def finish(self, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Check coverage and shapes against the target model's ``state_dict()``."""
        self.consumed()
        check_fits(self.out, expected, self.what)
        return self.out


def check_fits(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    """Raise ConversionError unless ``state`` has exactly the keys and shapes of ``expected``."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in state if k in expected and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model keys not filled: {missing[:8]}")
    if extra:
        problems.append(f"{len(extra)} produced keys the model lacks: {extra[:8]}")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:8]))
    if problems:
        raise ConversionError(f"{what}: " + " | ".join(problems))
