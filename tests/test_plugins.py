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


class EveryFamilyPlugin:
    """A third-party plugin registering one component in every family, GRU core included."""

    @hookimpl
    def register_corpora(self, register):
        from corpora import InlineText

        register("test-corpus", lambda repeat=20: InlineText("the cat sat on the mat. " * repeat))

    @hookimpl
    def register_preprocessors(self, register):
        register("test-reverse", Reverse)

    @hookimpl
    def register_encoders(self, register):
        from toolkit.default_plugins.encoders import EmbeddingEncoder

        register("test-embedding", EmbeddingEncoder)

    @hookimpl
    def register_sequence_builders(self, register):
        from toolkit.default_plugins.sequences import StreamBuilder

        register("test-stream", StreamBuilder)

    @hookimpl
    def register_cores(self, register):
        import keras

        class GRUCore:
            """Stacked GRU layers."""

            stateful = None

            def __init__(self, units: int = 8):
                self.units = units

            def build(self, stateful):
                return [keras.layers.GRU(self.units, return_sequences=True, stateful=stateful)]

        register("test-gru", GRUCore)

    @hookimpl
    def register_heads(self, register):
        from toolkit.default_plugins.heads import GeneratorHead

        register("test-head", GeneratorHead)

    @hookimpl
    def register_commands(self, register):
        register("test-hello", lambda parser: (lambda args: 0))


def test_a_pipeline_made_only_of_plugin_components_trains_and_generates(register_plugin,
                                                                       tmp_path):
    from toolkit.generate import Generator
    from toolkit.state import stateful_layers
    from toolkit.train import train

    register_plugin(EveryFamilyPlugin(), "test-every-family")
    config = tmp_path / "plugins.toml"
    config.write_text("""
[corpus]
use = "test-corpus"
[[preprocess]]
use = "test-reverse"
[[preprocess]]
use = "chars"
[encoder]
use = "test-embedding"
dim = 4
[sequences]
use = "test-stream"
batch_size = 2
length = 8
[core]
use = "test-gru"
[head]
use = "test-head"
[train]
epochs = 1
""")
    run = train(str(config), tmp_path / "run", verbose=0)
    generator = Generator.from_run(run.path)
    assert [type(layer).__name__ for layer in stateful_layers(generator.twin)] == ["GRU"]
    assert len(generator.generate(".tam", length=10, seed=0)[0]) == 10
    assert main(["test-hello"]) == 0


def test_every_hook_is_documented_and_tested():
    hooks = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("register_")]
    assert set(hooks) == set(plugins.FAMILIES.values())
    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for name in hooks:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
        assert name in guide, f"{name} is not in docs/plugins.md"
    # the test plugin that the pipeline test above trains with implements every hook,
    # and each hook registers its component when the registry is built
    manager = plugins.plugin_manager()
    plugin = EveryFamilyPlugin()
    manager.register(plugin, name="test-every-family")
    try:
        registered = plugins.registry().by_plugin()["test-every-family"]
    finally:
        manager.unregister(plugin)
    assert {c.family for c in registered} == set(plugins.FAMILIES)
