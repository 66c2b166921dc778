"""maest: masked autoencoders as spatiotemporal learners (Feichtenhofer et al., arXiv:2205.09113).

``maest.create_model``, ``maest.load``, ``maest.predict`` and ``maest.read_video`` are imported on first
use (from :mod:`maest.eval.api`), so ``import maest`` does not import torch.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["create_model", "load", "predict", "read_video", "__version__"]
_LAZY = ("create_model", "load", "predict", "read_video")

if TYPE_CHECKING:  # the real signatures, for type checkers and IDEs
    from maest.eval.api import create_model, load, predict, read_video


def __getattr__(name: str):
    if name in _LAZY:
        import maest.eval.api as api

        return getattr(api, name)
    raise AttributeError(f"module 'maest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY} - {"TYPE_CHECKING"})
