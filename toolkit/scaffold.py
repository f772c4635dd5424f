"""``toolkit plugin new NAME``: an installable plugin package to start from.

The package has a ``pyproject.toml`` declaring the ``toolkit`` entry point, one working
component for each family asked for (registered through the same hooks as the
built-ins), a test that trains with them, and a README. ``pip install -e NAME`` and
``toolkit plugins`` lists it.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from toolkit.errors import ToolkitError

FAMILIES = ("corpus", "preprocessor", "encoder", "core", "head", "command")

HOOKS = {
    "corpus": ("register_corpora", "repeated", "RepeatedText", '''
class RepeatedText:
    """A text repeated ``times`` times, one document (a corpus to start from)."""

    def __init__(self, text: str = "the quick brown fox jumps over the lazy dog. ",
                 times: PositiveInt = 50, label: str | None = None):
        self.text, self.times, self.label = text, times, label

    def documents(self):
        yield Document(self.text * self.times, "repeated", self.label)

    def describe(self) -> str:
        return f"repeated text ({len(self.text) * self.times} characters)"
'''),
    "preprocessor": ("register_preprocessors", "digits", "CollapseDigits", '''
class CollapseDigits(Stage):
    """Replace every digit by ``digit`` (text to text), so numbers share their tokens."""

    consumes = produces = "text"

    def __init__(self, digit: str = "0"):
        if len(digit) != 1:
            raise ValueError(f"digit: expected one character, received {digit!r}")
        self.digit = digit

    def __call__(self, text: str) -> str:
        return re.sub(r"[0-9]", self.digit, text)
'''),
    "encoder": ("register_encoders", "scaled-embedding", "ScaledEmbedding", '''
class ScaledEmbedding:
    """A learned embedding of size ``dim`` that masks padding id 0 (an encoder to start from)."""

    def __init__(self, dim: PositiveInt = 32):
        self.dim = dim

    def build(self, vocab_size: int):
        import keras

        return keras.layers.Embedding(vocab_size, self.dim, mask_zero=True)
'''),
    "core": ("register_cores", "gru", "GRUCore", '''
class GRUCore(Core):
    """Stacked GRU layers returning sequences (a core to start from)."""

    stateful = None  # follow the sequence builder

    def __init__(self, units: PositiveInt = 64, layers: PositiveInt = 1):
        self.units, self.layers = units, layers

    def build(self, stateful: bool) -> list:
        import keras

        return [keras.layers.GRU(self.units, return_sequences=True, stateful=stateful,
                                 name=f"core_gru_{i}") for i in range(self.layers)]
'''),
    "head": ("register_heads", "deep-generator", "DeepGenerator", '''
class DeepGenerator(Head):
    """Next-token prediction through a hidden ``Dense`` layer (a generator head to start from)."""

    def __init__(self, hidden: PositiveInt = 64):
        self.hidden = hidden

    def build(self, features, context):
        import keras

        hidden = keras.layers.Dense(self.hidden, activation="relu", name="head_hidden")
        softmax = keras.layers.Dense(context.vocab_size, activation="softmax", dtype="float32",
                                     name="head_softmax")
        return softmax(hidden(features))

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self):
        import keras_nlp

        return [keras_nlp.metrics.Perplexity(mask_token_id=0, name="perplexity")]
'''),
    "command": ("register_commands", "hello", "add_hello_command", '''
def add_hello_command(parser):
    """Say hello (a command to start from)."""
    parser.add_argument("--name", default="world")

    def run(args) -> int:
        print(f"hello {args.name}")
        return 0

    return run
'''),
}


def module_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def render_module(name: str, families: list[str]) -> str:
    prefix = module_name(name).replace("_", "-")
    parts = [f'"""{name}: a plugin for lstm-text-toolkit."""', "",
             "import re  # noqa: F401", "",
             "from toolkit.hookspecs import Core, Document, Head, Stage, hookimpl  # noqa: F401",
             "from toolkit.config.params import PositiveInt  # noqa: F401", ""]
    for family in families:
        parts.append(textwrap.dedent(HOOKS[family][3]).rstrip() + "\n")
    for family in families:
        hook, component, factory, _ = HOOKS[family]
        parts += ["", "@hookimpl", f"def {hook}(register):",
                  f'    register("{prefix}-{component}", {factory})', ""]
    return "\n".join(parts).rstrip() + "\n"


def render_test(name: str, families: list[str]) -> str:
    prefix = module_name(name).replace("_", "-")
    use = {"corpus": f'{{ use = "{prefix}-repeated" }}',
           "encoder": f'{{ use = "{prefix}-scaled-embedding", dim = 8 }}',
           "core": f'{{ use = "{prefix}-gru", units = 8 }}',
           "head": f'{{ use = "{prefix}-deep-generator", hidden = 8 }}'}
    sections = {
        "corpus": use["corpus"] if "corpus" in families
        else '{ use = "inline", text = "the quick brown fox jumps over the lazy dog. 12 34 " }',
        "encoder": use["encoder"] if "encoder" in families else "{ dim = 8 }",
        "core": use["core"] if "core" in families else "{ units = 8 }",
        "head": use["head"] if "head" in families else '{ use = "generator" }',
    }
    stages = (f'[{{ use = "{prefix}-digits" }}, {{ use = "chars" }}]'
              if "preprocessor" in families else '[{ use = "chars" }]')
    lines = [f'"""{name}: its components train a tiny model through the toolkit."""', "",
             "from toolkit.plugins import registry", "from toolkit.training.phases import train", "",
             "CONFIG = '''",
             *(f"{key} = {value}" for key, value in sections.items()),
             f"preprocess = {stages}",
             'sequences = { use = "stream", batch_size = 2, length = 8 }',
             "train = { epochs = 1, sample_length = 0, tensorboard = false, cache = false }",
             "'''", "", "",
             "def test_the_plugin_registers_its_components():",
             "    names = {c.name for c in registry().by_plugin()"
             f"[{module_name(name)!r}]}}",
             f"    assert names == {set(f'{prefix}-{HOOKS[f][1]}' for f in families)!r}",
             "", "",
             "def test_a_tiny_model_trains_with_them(tmp_path):",
             '    config = tmp_path / "plugin.toml"',
             "    config.write_text(CONFIG)",
             '    run = train(str(config), tmp_path / "run", verbose=0)',
             '    assert run.metrics()["epochs_done"] == 1', ""]
    return "\n".join(lines)


def scaffold(name: str, families: list[str], where: str | Path = ".") -> Path:
    """Write the plugin package ``NAME`` for ``families`` under ``where``; returns its folder."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise ToolkitError(f"plugin name: expected letters, digits, '-' or '_' starting with a "
                           f"letter, received {name!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ToolkitError(f"--family: unknown {unknown}; choose from {', '.join(FAMILIES)}")
    families = [f for f in FAMILIES if f in families] or ["preprocessor"]
    root = Path(where) / name
    if root.exists():
        raise ToolkitError(f"{root} already exists; choose another NAME or remove it")
    module = module_name(name)
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(textwrap.dedent(f'''\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1.0"
        description = "A plugin for lstm-text-toolkit"
        requires-python = ">=3.11"
        dependencies = ["lstm-text-toolkit"]

        [project.optional-dependencies]
        test = ["pytest>=8"]

        [project.entry-points.toolkit]
        {module} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
        '''))
    (root / module / "__init__.py").write_text(render_module(name, families))
    (root / "tests" / f"test_{module}.py").write_text(render_test(name, families))
    prefix = module.replace("_", "-")
    rows = "\n".join(f"| `{prefix}-{HOOKS[f][1]}` | {f} | |" for f in families)
    (root / "README.md").write_text(textwrap.dedent(f'''\
        # {name}

        A plugin for lstm-text-toolkit. It registers:

        | name | family | keys |
        | --- | --- | --- |
        ''') + rows + textwrap.dedent(f'''


        Install it beside the toolkit and check that the toolkit sees it:

        ```bash
        pip install -e {name} && toolkit plugins
        python -m pytest {name}/tests
        ```

        The hooks and what each component must provide are in the toolkit's
        docs/plugins.md (generated from `toolkit/hookspecs.py`).
        '''))
    return root
