"""A resolved config as frozen dataclasses that know where each value came from.

``Config`` holds every section with every default filled in: ``config.train.epochs``,
``config.core.use``, ``config.preprocess[0].use``. Nothing in it can be changed: a
changed config is a new one (``Config.to_dict()``, edit the copy, resolve it again).
``config.origin("train.epochs")`` says where a value came from, as an
:class:`Origin`: the default, the config file (``config_file``), a ``--set`` flag, a dict
given from Python, or a trained run's stored ``config.toml``.

Sections also read like read-only dicts (``config["train"]["epochs"]``), as plugins and
older code do.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True)
class Origin:
    """Where one value of a config came from: ``kind`` is ``"default"``, ``"config file"``,
    ``"--set"``, ``"config dict"`` or ``"stored run"``; ``where`` names the file, the flag
    or the run (empty for a default)."""

    kind: str
    where: str = ""

    def __str__(self) -> str:
        if self.kind == "--set":
            return self.where
        return f"{self.kind} {self.where}".strip()


DEFAULT = Origin("default")


@dataclass(frozen=True, eq=False)
class Section(Mapping):
    """One resolved section (or one ``[[preprocess]]`` stage): its values by key, read as
    attributes or like a read-only dict, and the origin of each. (The fields are private
    so that no config key, such as a corpus's ``name``, is hidden by one.)"""

    _name: str
    _values: dict = field(repr=False)
    _origins: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, key: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if key in values:
            return values[key]
        raise AttributeError(f"[{object.__getattribute__(self, '_name')}] has no key {key!r}; "
                             f"it has {', '.join(values) or 'none'}")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._values!r})"

    def origin(self, key: str) -> Origin:
        """Where ``key``'s value came from."""
        if key not in self._values:
            raise KeyError(f"[{self._name}] has no key {key!r}")
        return self._origins.get(key, DEFAULT)

    def to_dict(self) -> dict:
        """A plain, deep copy of the values (to edit, or to write as TOML or JSON)."""
        return copy.deepcopy(self._values)


@dataclass(frozen=True, eq=False)
class Config(Mapping):
    """A resolved config: the sections in their order, frozen, and the file it came from
    (``config_file``: a path, ``"config dict"`` for one given from Python, or a run's
    ``config.toml``; ``None`` for one made in code)."""

    sections: dict = field(repr=False)
    config_file: str | None = None

    @classmethod
    def of(cls, resolved: dict, origins: dict[tuple, Origin] | None = None,
           config_file: str | None = None) -> "Config":
        """Wrap a resolved dict; ``origins`` maps key paths (``("train", "epochs")``,
        ``("preprocess", 0, "use")``) to where their values came from."""
        origins = origins or {}
        sections = {}
        for name, value in resolved.items():
            if isinstance(value, list):
                sections[name] = tuple(
                    Section(f"{name}.{i}", dict(stage),
                            {k: o for (s, j, k), o in _three(origins) if s == name and j == i})
                    for i, stage in enumerate(value))
            else:
                sections[name] = Section(name, dict(value),
                                         {path[1]: o for path, o in origins.items()
                                          if len(path) == 2 and path[0] == name})
        return cls(sections, config_file)

    def __getattr__(self, name: str) -> Any:
        sections = object.__getattribute__(self, "sections")
        if name in sections:
            return sections[name]
        raise AttributeError(f"a config has no section {name!r}; it has {', '.join(sections)}")

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sections)

    def __len__(self) -> int:
        return len(self.sections)

    def __repr__(self) -> str:
        return f"Config({self.config_file!r}, {self.to_dict()!r})"

    def origin(self, path: str) -> Origin:
        """Where the value at ``"section.key"`` (``"preprocess.0.use"``) came from."""
        name, _, rest = path.partition(".")
        section = self.sections[name]
        if isinstance(section, tuple):
            index, _, rest = rest.partition(".")
            section = section[int(index)]
        return section.origin(rest)

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (to edit and resolve again, or to write as TOML)."""
        return {name: [stage.to_dict() for stage in value] if isinstance(value, tuple)
                else value.to_dict() for name, value in self.sections.items()}


def _three(origins: dict) -> list:
    return [(path, origin) for path, origin in origins.items() if len(path) == 3]
