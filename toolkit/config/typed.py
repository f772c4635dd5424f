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


def tables(resolved: Mapping) -> Iterator[tuple[tuple, Mapping]]:
    """Each table of a resolved config with its key-path prefix: ``("train",)``, and
    ``("preprocess", 0)`` for the stages of a list section."""
    for name, value in resolved.items():
        if isinstance(value, (list, tuple)):
            for i, stage in enumerate(value):
                yield (name, i), stage
        else:
            yield (name,), value


class ReadOnlyEntries(Mapping):
    """Read-only dict access, and attribute access, to a frozen dataclass's ``_entries``
    (private, so that no entry is hidden by a field of the same name)."""

    _entries: dict
    entry = "key"  # what an entry is called in messages

    def __getattr__(self, key: str) -> Any:
        entries = object.__getattribute__(self, "_entries")
        if key in entries:
            return entries[key]
        raise AttributeError(f"{self.describe()} has no {self.entry} {key!r}; it has "
                             f"{', '.join(map(str, entries)) or 'none'}")

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Section(ReadOnlyEntries):
    """One resolved section (or one ``[[preprocess]]`` stage): its values by key, read as
    attributes or like a read-only dict, and the origin of each."""

    _name: str
    _entries: dict = field(repr=False)
    _origins: dict = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        return f"[{self._name}]"

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._entries!r})"

    def origin(self, key: str) -> Origin:
        """Where ``key``'s value came from."""
        if key not in self._entries:
            raise KeyError(f"[{self._name}] has no key {key!r}")
        return self._origins.get(key, DEFAULT)

    def to_dict(self) -> dict:
        """A plain, deep copy of the values (to edit, or to write as TOML or JSON)."""
        return copy.deepcopy(self._entries)


@dataclass(frozen=True, eq=False)
class Config(ReadOnlyEntries):
    """A resolved config: the sections in their order, frozen, and the file it came from
    (``config_file``: a path, ``"config dict"`` for one given from Python, or a run's
    ``config.toml``; ``None`` for one made in code)."""

    _entries: dict = field(repr=False)
    config_file: str | None = None

    @classmethod
    def of(cls, resolved: dict, origins: dict[tuple, Origin] | None = None,
           config_file: str | None = None) -> "Config":
        """Wrap a resolved dict; ``origins`` maps key paths (``("train", "epochs")``,
        ``("preprocess", 0, "use")``) to where their values came from."""
        origins = origins or {}
        sections: dict = {}
        for prefix, table in tables(resolved):
            section = Section(".".join(map(str, prefix)), dict(table),
                              {path[-1]: origin for path, origin in origins.items()
                               if path[:-1] == prefix})
            if len(prefix) == 2:  # a stage of a list section
                sections[prefix[0]] = (*sections.get(prefix[0], ()), section)
            else:
                sections[prefix[0]] = section
        return cls(sections, config_file)

    entry = "section"

    def describe(self) -> str:
        return "a config"

    def __repr__(self) -> str:
        return f"Config({self.config_file!r}, {self.to_dict()!r})"

    def origin(self, path: str) -> Origin:
        """Where the value at ``"section.key"`` (``"preprocess.0.use"``) came from."""
        name, _, rest = path.partition(".")
        section = self._entries[name]
        if isinstance(section, tuple):
            index, _, rest = rest.partition(".")
            section = section[int(index)]
        return section.origin(rest)

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (to edit and resolve again, or to write as TOML)."""
        return {name: [stage.to_dict() for stage in value] if isinstance(value, tuple)
                else value.to_dict() for name, value in self._entries.items()}
