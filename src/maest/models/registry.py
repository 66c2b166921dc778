"""Name -> model factory registry (timm's pattern, reduced to its essence)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, aliases: tuple[str, ...] = ()):
    """Decorator registering ``fn`` under its name (and optional short aliases)."""

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[f.__name__] = f
        for a in aliases:
            _ALIASES[a] = f.__name__
        return f

    return wrap(fn) if fn is not None else wrap


def resolve_name(name: str) -> str:
    _ensure_builtin()
    name = _ALIASES.get(name, name)
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return name


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("mae_vit_base_patch16", depth=2)``."""
    return _MODELS[resolve_name(name)](**overrides)


def list_models(pattern: str = "") -> list[str]:
    """Registered model names containing ``pattern`` (aliases included)."""
    _ensure_builtin()
    return sorted(n for n in [*_MODELS, *_ALIASES] if pattern in n)


def _ensure_builtin() -> None:
    # importing the zoo registers its factories; done lazily to avoid an import cycle
    import maest.models.vit  # noqa: F401
    import maest.models.zoo  # noqa: F401
