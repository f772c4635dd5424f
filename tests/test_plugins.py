"""Plugins: registration through hooks, use by name from a config, listing, errors."""

import importlib.metadata
import inspect
import json
from pathlib import Path

import pytest

from toolkit import hookspecs, plugins
from toolkit.cli import main
from toolkit.config.schema import build_components, resolve
from toolkit.errors import ToolkitError
from toolkit.hookspecs import hookimpl
from toolkit.hookspecs import Stage
from toolkit.data.preprocess import Preprocessor


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
    assert list(Preprocessor(components.stages)("abc")) == ["c", "b", "a"]
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
    assert manager.get_plugin("broken") is None
    monkeypatch.setenv("TOOLKIT_LOAD_PLUGINS", "")
    plugins.load_entry_point_plugins(manager)  # not chosen: not even imported
    monkeypatch.setenv("TOOLKIT_LOAD_PLUGINS", "other")
    plugins.load_entry_point_plugins(manager)
    assert manager.get_plugin("broken") is None


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
        from toolkit.default_plugins.corpora import InlineText

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

        from toolkit.hookspecs import Core

        class GRUCore(Core):
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
    from toolkit.generate.sampling import Generator
    from toolkit.model.state import stateful_layers
    from toolkit.training.phases import train

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
    # the never-seen core resumes and evaluates like a built-in one
    assert main(["train", "--resume", "--run-dir", str(run.path), "--set", "train.epochs=2"]) == 0
    assert json.loads((run.path / "progress.json").read_text())["epochs_done"] == 2
    assert main(["evaluate", str(run.path)]) == 0


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


# --- a head and a sequence builder the toolkit has never seen -------------------------

def make_chunk_plugin():
    import keras
    import numpy as np

    from toolkit.hookspecs import EpochData, Head, Passages, SequenceBuilder

    class Chunks(EpochData):
        def __init__(self, passages, batch_size):
            super().__init__()
            self.passages, self.batch_size = passages, batch_size
            self.length = passages.ids.shape[1]

        def __len__(self):
            return -(-len(self.passages) // self.batch_size)

        def __getitem__(self, k):
            rows = slice(k * self.batch_size, (k + 1) * self.batch_size)
            p = self.passages
            return p.ids[rows], p.labels[rows], p.weights[rows]

        def signature(self):
            import tensorflow as tf

            return (tf.TensorSpec((None, self.length), tf.int32),
                    tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.float32))

    class ChunkBuilder(SequenceBuilder):
        """Every split segment cut into chunks of ``length`` tokens, one label each."""

        def __init__(self, batch_size: int = 8, length: int = 12):
            self.batch_size, self.length = batch_size, length

        def accept_head(self, head):
            if head.target != "label":
                raise ValueError("chunks feed label targets only")

        def cut(self, ids):
            count = max(1, len(ids) // self.length)
            out = np.zeros((count, self.length), np.int32)
            for i in range(count):
                piece = ids[i * self.length:(i + 1) * self.length]
                out[i, :len(piece)] = piece
            return out

        def data(self, split, labels=(), training=False):
            index = {label: i for i, label in enumerate(labels)}
            rows, label_ids = [], []
            for ids, label in zip(split.ids, split.labels):
                chunks = self.cut(ids)
                rows.append(chunks)
                label_ids += [index[label]] * len(chunks)
            ids = np.concatenate(rows)
            return Passages(ids, np.array(label_ids, np.int32), np.ones(len(ids), np.float32))

        def training(self, data, seed):
            return Chunks(data, self.batch_size)

        def validation(self, data):
            return Chunks(data, self.batch_size)

        def passages(self, ids):
            return self.cut(ids)

        def describe(self):
            return {"chunks_of": self.length}

    class AverageHead(Head):
        """Authors from the average of the core's outputs (a test plugin's head)."""

        target = "label"
        labelled = True
        generates = False
        attributes = True
        monitor = "val_loss"

        def build(self, features, context):
            pooled = keras.layers.GlobalAveragePooling1D(name="head_average")(features)
            return keras.layers.Dense(len(context.labels), activation="softmax",
                                      name="head_authors")(pooled)

        def loss(self):
            return keras.losses.SparseCategoricalCrossentropy()

        def metrics(self):
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

        def describe(self, summary):
            return f"average-head loss {summary['loss']:.3f}"

        def score_passages(self, model, passages, batch_size):
            return np.log(np.maximum(model.predict(passages, batch_size=batch_size,
                                                   verbose=0), 1e-12))

    class ChunkPlugin:
        @hookimpl
        def register_sequence_builders(self, register):
            register("test-chunks", ChunkBuilder)

        @hookimpl
        def register_heads(self, register):
            register("test-average", AverageHead)

    return ChunkPlugin()


def test_an_unseen_head_and_builder_train_attribute_and_evaluate(register_plugin, tmp_path,
                                                                  capsys):
    register_plugin(make_chunk_plugin(), "test-chunks")
    corpus = tmp_path / "authors.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": text * 30, "label": label})
                                for label, text in (("abc", "abc abc cab "),
                                                    ("xyz", "xyz zyx xxy "))) + "\n")
    config = tmp_path / "chunks.toml"
    config.write_text(f"""
[corpus]
use = "jsonl"
path = "{corpus}"
[sequences]
use = "test-chunks"
[encoder]
dim = 4
[core]
units = 8
[head]
use = "test-average"
[train]
epochs = 2
learning_rate = 0.02
validation_fraction = 0.3
""")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    assert "validation: average-head loss" in capsys.readouterr().out
    sample = tmp_path / "sample.txt"
    sample.write_text("xyz zyx xxy " * 4)
    assert main(["attribute", str(tmp_path / "run"), str(sample), "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out)[0]
    assert ranking["passages"] == 4 and {r["author"] for r in ranking["ranking"]} == {"abc", "xyz"}
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "attribution" and report["chunks_of"] == 12
    assert report["split"] == "validation" and report["passages"] == 2 * 108 // 12
    assert "baseline" in report and len(report["lstm"]["confusion"]) == 2
    assert main(["generate", str(tmp_path / "run")]) == 2
    assert "cannot attribute" not in capsys.readouterr().err
    # the never-seen head and builder resume, and calibrate like built-in ones
    assert main(["train", "--resume", "--run-dir", str(tmp_path / "run"),
                 "--set", "train.epochs=3"]) == 0
    assert json.loads((tmp_path / "run" / "progress.json").read_text())["epochs_done"] == 3
    assert main(["calibrate", str(tmp_path / "run")]) == 0


def test_every_installed_component_follows_its_familys_contract():
    contracts = {"corpus": hookspecs.Corpus, "preprocessor": hookspecs.Stage,
                 "encoder": hookspecs.Encoder, "sequence builder": hookspecs.SequenceBuilder,
                 "core": hookspecs.Core, "head": hookspecs.Head}
    assert set(contracts) | {"command"} == set(plugins.FAMILIES)
    for family, contract in contracts.items():
        methods = [name for name, value in vars(contract).items()
                   if inspect.isfunction(value) and not name.startswith("_")]
        for name, component in plugins.registry().components[family].items():
            factory = component.factory
            assert inspect.isclass(factory), f"{family} {name}: factory is not a class"
            if getattr(contract, "_is_protocol", False):
                missing = [m for m in methods if not callable(getattr(factory, m, None))]
                assert not missing, f"{family} {name} lacks {missing}"
            else:
                assert issubclass(factory, contract), f"{family} {name} is not a {contract}"


def test_a_scaffolded_plugin_installs_registers_and_trains(tmp_path):
    """`toolkit plugin new` writes a package that pip installs and the toolkit then uses."""
    import os
    import subprocess
    import sys

    assert main(["plugin", "new", "toolkit-demo", "--where", str(tmp_path),
                 *[f"--family={f}" for f in ("corpus", "preprocessor", "encoder", "core",
                                             "head", "command")]]) == 0
    package, site = tmp_path / "toolkit-demo", tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                              "--no-build-isolation", "--target", str(site), str(package)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-800:]
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TOOLKIT_LOAD_PLUGINS", None)
    listed = subprocess.run([sys.executable, "-m", "toolkit.cli", "plugins"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "toolkit_demo" in listed.stdout and "toolkit-demo-gru" in listed.stdout
    hello = subprocess.run([sys.executable, "-m", "toolkit.cli", "toolkit-demo-hello",
                            "--name", "plugin"], env=env, capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert hello.stdout.strip() == "hello plugin"
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(package / "tests")], env=env, capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout[-1500:]
    assert main(["plugin", "new", "toolkit-demo", "--where", str(tmp_path)]) == 2
