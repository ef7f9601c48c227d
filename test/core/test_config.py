"""Typed configs: YAML + key=value overrides, with errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fast_scnn_core.config import load_config, to_dict
from fast_scnn_core.errors import ConfigError


@dataclass
class Inner:
    root: str = "data"
    size: tuple[int, int] = (512, 1024)


@dataclass
class Example:
    epochs: int = 1000
    lr: float = 0.045
    amp: bool = True
    name: str | None = None
    data: Inner = field(default_factory=Inner)


def test_defaults_then_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\ndata:\n  root: /x\n")
    config = load_config(Example, path, ["lr=0.01", "data.size=[64, 128]", "name=run1"])
    assert config == Example(epochs=5, lr=0.01, name="run1", data=Inner(root="/x", size=(64, 128)))
    assert to_dict(config)["data"]["size"] == [64, 128]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key\(s\) \['epoch'\]"):
        load_config(Example, path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=ten", r"Example.epochs: expected an integer"),
        ("amp=1", r"Example.amp: expected true or false"),
        ("data.size=[1]", r"Example.data.size: expected 2 values"),
        ("data.nope=1", r"Example.data: unknown key"),
        ("novalue", r"expected key=value"),
    ],
)
def test_bad_override_is_refused_with_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Example, None, [override])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(Example, tmp_path / "missing.yaml")


def test_atomic_write_gives_the_usual_file_mode_and_leaves_no_temp_on_error(tmp_path: Path) -> None:
    import os

    from fast_scnn_core.atomic import atomic_path, atomic_write_text

    target = tmp_path / "out.json"
    atomic_write_text(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
