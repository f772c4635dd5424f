"""The plugin manager and the registry of named components.

Built-in components are plugins too: the modules in ``DEFAULT_PLUGINS`` register
through the same hooks as third-party packages, which are found through the
``toolkit`` entry-point group. ``TOOLKIT_LOAD_PLUGINS`` (a comma-separated list of
entry-point names) restricts which third-party plugins load; set it to an empty
string to load none.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
from dataclasses import dataclass
from typing import Callable

import pluggy

from toolkit import hookspecs
from toolkit.errors import ConfigError, ToolkitError, did_you_mean

ENTRY_POINT_GROUP = "toolkit"

DEFAULT_PLUGINS = (
    "toolkit.default_plugins.corpora",
    "toolkit.default_plugins.preprocessors",
    "toolkit.default_plugins.encoders",
    "toolkit.default_plugins.sequences",
    "toolkit.default_plugins.passages",
    "toolkit.default_plugins.cores",
    "toolkit.default_plugins.heads",
)

# family name (as used in config files and messages) -> hook name
FAMILIES = {
    "corpus": "register_corpora",
    "preprocessor": "register_preprocessors",
    "encoder": "register_encoders",
    "sequence builder": "register_sequence_builders",
    "core": "register_cores",
    "head": "register_heads",
    "command": "register_commands",
}


@dataclass(frozen=True)
class Component:
    """A registered factory, the family it belongs to and the plugin that registered it."""

    family: str
    name: str
    factory: Callable
    plugin: str

    @property
    def summary(self) -> str:
        """The first sentence of the factory's docstring, as plain text."""
        doc = (inspect.getdoc(self.factory) or "").strip()
        paragraph = " ".join(doc.split("\n\n")[0].split())
        match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
        return (match.group(1) if match else paragraph).replace("``", "")


class Registry:
    """Every registered component, by family and name."""

    def __init__(self):
        self.components: dict[str, dict[str, Component]] = {family: {} for family in FAMILIES}

    def add(self, family: str, name: str, factory: Callable, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise ToolkitError(
                f"plugin {plugin!r} registered a {family} with an invalid name: {name!r}")
        if not callable(factory):
            raise ToolkitError(
                f"plugin {plugin!r} registered {family} {name!r} with a factory that is "
                f"not callable: {factory!r}")
        existing = self.components[family].get(name)
        if existing is not None:
            raise ToolkitError(
                f"{family} {name!r} is registered twice: by plugin {existing.plugin!r} and "
                f"by plugin {plugin!r}; uninstall one of them or choose which plugins load "
                f"with TOOLKIT_LOAD_PLUGINS")
        self.components[family][name] = Component(family, name, factory, plugin)

    def names(self, family: str) -> list[str]:
        return sorted(self.components[family])

    def get(self, family: str, name: str, key: str = "use") -> Component:
        """The component ``name`` of ``family``; unknown names list the known ones."""
        try:
            return self.components[family][name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.names(family)) or "(none)"
            raise ConfigError(
                key, f"unknown {family} {name!r}.{did_you_mean(name, self.names(family))} "
                     f"Available names: {known}. Run `toolkit plugins` to see what each "
                     f"plugin registers.") from None

    def by_plugin(self) -> dict[str, list[Component]]:
        result: dict[str, list[Component]] = {}
        for family in self.components.values():
            for component in family.values():
                result.setdefault(component.plugin, []).append(component)
        return result


_manager: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-in and installed plugins loaded."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager("toolkit")
        manager.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            manager.register(importlib.import_module(module_name), name=module_name)
        load_entry_point_plugins(manager)
        _manager = manager
    return _manager


def load_plugins() -> pluggy.PluginManager:
    """Import every plugin (built-in and installed), which also registers the Keras layers
    they define so that saved models load; returns the plugin manager."""
    return plugin_manager()


def load_entry_point_plugins(manager: pluggy.PluginManager) -> None:
    """Load third-party plugins from the ``toolkit`` entry-point group."""
    wanted = os.environ.get("TOOLKIT_LOAD_PLUGINS")
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if manager.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as err:
            raise ToolkitError(
                f"plugin {entry_point.name!r} ({entry_point.value}, from package "
                f"{entry_point.dist.name if entry_point.dist else '?'}) failed to import: "
                f"{type(err).__name__}: {err}. Reinstall or uninstall it, or leave it out "
                f"with TOOLKIT_LOAD_PLUGINS") from None
        manager.register(plugin, name=entry_point.name)


def build_registry(manager: pluggy.PluginManager | None = None) -> Registry:
    """Ask every plugin to register its components; each call is attributed to its plugin."""
    manager = manager or plugin_manager()
    registry = Registry()
    for family, hook_name in FAMILIES.items():
        hook = getattr(manager.hook, hook_name)
        for impl in hook.get_hookimpls():
            def register(name, factory, _family=family, _plugin=impl.plugin_name):
                registry.add(_family, name, factory, _plugin)

            try:
                impl.function(register=register)
            except ToolkitError:
                raise
            except Exception as err:
                raise ToolkitError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(err).__name__}: {err}") from err
    return registry


_registry: tuple[tuple, Registry] | None = None


def registry() -> Registry:
    """The registry of the current plugin manager, built once per process.

    It is built again only when the set of registered plugins changes (a test
    registering a plugin of its own, or unregistering it)."""
    global _registry
    manager = plugin_manager()
    plugins_now = tuple((name, id(plugin)) for name, plugin in manager.list_name_plugin())
    if _registry is None or _registry[0] != plugins_now:
        _registry = (plugins_now, build_registry(manager))
    return _registry[1]
