"""maest: masked autoencoders as spatiotemporal learners (Feichtenhofer et al., arXiv:2205.09113)."""

from __future__ import annotations

__version__ = "0.1.0"


def load(path: str):  # the real signature and return type are maest.loading.load's
    """The model a maest checkpoint describes, in eval mode (see :func:`maest.loading.load`)."""
    from maest.loading import load as _load  # keeps ``import maest`` free of torch

    return _load(path)
