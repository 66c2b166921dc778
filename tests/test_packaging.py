"""Issue 13, packaging: the license is declared and shipped, and TensorBoard is an optional extra."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_and_optional_tensorboard_in_pyproject():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert not any(d.startswith("tensorboard") for d in meta["dependencies"])
    assert any(d.startswith("tensorboard") for d in meta["optional-dependencies"]["tensorboard"])
