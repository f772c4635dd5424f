"""The configs shipped inside the package (``toolkit/configs/``): listed by
``toolkit config list`` and copied out by ``toolkit config copy``, so they are at hand
after a plain ``pip install`` as well as in a checkout (where ``configs/`` points at them).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from toolkit.errors import ToolkitError, did_you_mean


def shipped() -> dict[str, str]:
    """Each shipped config's text by name (the file name without ``.toml``)."""
    folder = importlib.resources.files("toolkit") / "configs"
    configs = {entry.name[:-len(".toml")]: entry for entry in folder.iterdir()
               if entry.name.endswith(".toml")}
    return {name: configs[name].read_text(encoding="utf-8") for name in sorted(configs)}


def summary(text: str, width: int = 80) -> str:
    """The config's leading comment on one line, cut to ``width`` characters."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words = " ".join(line for line in lines if line)
    return words if len(words) <= width else words[:width - 1].rstrip() + "…"


def copy_config(name: str, destination: str | None = None, force: bool = False) -> Path:
    """Write the shipped config ``name`` (with or without ``.toml``) to ``destination``
    (a file, or a folder to write ``NAME.toml`` in; default: the current folder). An
    existing file is kept unless ``force``."""
    configs = shipped()
    name = name.removesuffix(".toml")
    if name not in configs:
        raise ToolkitError(f"no shipped config named {name!r}.{did_you_mean(name, configs)} "
                           f"Shipped: {', '.join(configs)} (`toolkit config list`)")
    target = Path(destination) if destination else Path(f"{name}.toml")
    if target.is_dir():
        target = target / f"{name}.toml"
    if target.exists() and not force:
        raise ToolkitError(f"{target} exists; give another DEST or --force to replace it")
    if not target.parent.is_dir():
        raise ToolkitError(f"cannot write {target}: folder {target.parent} does not exist")
    target.write_text(configs[name], encoding="utf-8")
    return target
