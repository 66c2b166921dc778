"""Name -> model configuration registry (timm's pattern, over configs): a name gives an
:class:`~maest.models.mae.MAEConfig` or :class:`~maest.models.vit.ClassifierConfig`, and the config
builds the model. This module only keeps the table; :mod:`maest.models.factory` fills and reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_CONFIGS: dict[str, Callable[[], Any]] = {}
_ALIASES: dict[str, str] = {}
_ABOUT: dict[str, str] = {}


def register_config(name: str, fn: Callable[[], Any], aliases: tuple[str, ...] = (), about: str = "") -> None:
    """Register ``fn`` (returning a fresh config) under ``name`` and optional short aliases; ``about`` says
    what the model is for (``maest models --verbose``)."""
    _CONFIGS[name] = fn
    _ABOUT[name] = about
    for a in aliases:
        _ALIASES[a] = name


def about(name: str) -> str:
    """What the registered model ``name`` (or alias) is for."""
    return _ABOUT.get(_ALIASES.get(name, name), "")


def canonical(name: str) -> str:
    """The registered name an alias stands for (a name stands for itself)."""
    return _ALIASES.get(name, name)


def registered_names() -> list[str]:
    return sorted([*_CONFIGS, *_ALIASES])


def lookup(name: str) -> Callable[[], Any]:
    name = _ALIASES.get(name, name)
    if name not in _CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(registered_names())}")
    return _CONFIGS[name]


class Registered:
    """Mixin of the model configs: ``--set model.name=X`` stands for X's whole registered geometry."""

    def adopt(self, name: str, path: str = "model.name") -> None:
        """Take the encoder (and decoder) of the registered ``name``; later ``--set`` keys refine them."""
        fresh = lookup(name)()
        if type(fresh) is not type(self):
            raise ValueError(f"{path}={name!r} is a {fresh.kind} model; this job needs a {self.kind} model")
        for f in ("encoder", "decoder"):
            if hasattr(self, f):
                setattr(self, f, getattr(fresh, f))
