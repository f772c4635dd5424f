"""Plugins: registration through hooks, use by name from a config, listing, errors."""

import importlib.metadata
import inspect
from pathlib import Path

import pytest

from toolkit import hookspecs, plugins
from toolkit.cli import main
from toolkit.config import build_components, resolve
from toolkit.errors import ToolkitError
from toolkit.hookspecs import hookimpl
from toolkit.preprocess import Preprocessor, Stage


class Reverse(Stage):
    """Reverse the text (a test plugin's stage)."""

    def __init__(self, times: int = 1):
        self.times = times

    def __call__(self, text):
        return text[::-1] if self.times % 2 else text


class ReversePlugin:
    @hookimpl
    def register_preprocessors(self, register):
        register("reverse", Reverse)


def test_a_plugin_registered_in_a_fixture_is_usable_by_name(register_plugin):
    register_plugin(ReversePlugin(), "test-reverse")
    raw = {"corpus": {"use": "inline", "text": "abc"},
           "preprocess": [{"use": "reverse", "times": 3}, {"use": "chars"}]}
    resolved = resolve(raw, plugins.registry())
    components = build_components(resolved, plugins.registry())
    assert Preprocessor(components.stages)("abc") == ["c", "b", "a"]
    with pytest.raises(ToolkitError, match="preprocess.0.times: expected an integer"):
        resolve({**raw, "preprocess": [{"use": "reverse", "times": "x"}, {"use": "chars"}]},
                plugins.registry())


def test_plugins_command_lists_it(register_plugin, capsys):
    register_plugin(ReversePlugin(), "test-reverse")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "test-reverse" in out
    assert "reverse" in out and "Reverse the text" in out
    assert "toolkit.default_plugins.sequences" in out and "stream" in out


def test_a_duplicate_name_names_both_plugins(register_plugin):
    class Again:
        @hookimpl
        def register_preprocessors(self, register):
            register("chars", Reverse)

    register_plugin(Again(), "test-again")
    with pytest.raises(ToolkitError, match="preprocessor 'chars' is registered twice: by plugin "
                                           "'toolkit.default_plugins.preprocessors' and by "
                                           "plugin 'test-again'"):
        plugins.registry()


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ToolkitError, match="Available names: 'embedding', 'onehot'"):
        plugins.registry().get("encoder", "glove", key="encoder.use")


class BrokenEntryPoint:
    name, value = "broken", "broken_plugin:plugin"
    dist = type("Dist", (), {"name": "broken-plugin"})()

    def load(self):
        raise ImportError("No module named 'broken_plugin'")


def test_a_plugin_that_fails_to_import_is_named(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [BrokenEntryPoint()] if group == "toolkit" else [])
    monkeypatch.delenv("TOOLKIT_LOAD_PLUGINS", raising=False)
    manager = plugins.pluggy.PluginManager("toolkit")
    manager.add_hookspecs(hookspecs)
    with pytest.raises(ToolkitError, match="plugin 'broken' .*broken-plugin.* failed to import: "
                                           "ImportError"):
        plugins.load_entry_point_plugins(manager)
    monkeypatch.setenv("TOOLKIT_LOAD_PLUGINS", "")
    plugins.load_entry_point_plugins(manager)  # not chosen: not loaded


def test_plugin_commands_are_added_to_the_cli(register_plugin, capsys):
    def add_hello(parser):
        """Say hello."""
        parser.add_argument("--name", default="world")
        return lambda args: print(f"hello {args.name}") or 0

    class CommandPlugin:
        @hookimpl
        def register_commands(self, register):
            register("hello", add_hello)

    register_plugin(CommandPlugin(), "test-command")
    assert main(["hello", "--name", "stream"]) == 0
    assert "hello stream" in capsys.readouterr().out


def test_every_hook_is_documented_and_tested():
    hooks = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("register_")]
    assert set(hooks) == set(plugins.FAMILIES.values())
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for name in hooks:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
        assert name in guide, f"{name} is not in docs/plugins.md"
    for family, hook in plugins.FAMILIES.items():
        names = plugins.registry().names(family)
        assert family == "command" or names, f"no built-in {family}"
        # each hook is exercised by a test, directly or through a built-in
        assert hook in tests or any(f'"{n}"' in tests for n in names), hook
