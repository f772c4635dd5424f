import os
import tempfile
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))
os.environ.setdefault("TOOLKIT_DATA", str(SHARED / "corpora"))
os.environ.setdefault("TOOLKIT_LOAD_PLUGINS", "nltk")  # built-ins and our NLTK package only
os.environ.setdefault("TOOLKIT_CACHE", tempfile.mkdtemp(prefix="toolkit-cache-"))
# One pytest-xdist worker per core: each TensorFlow (and each process a test starts) keeps
# to one thread per op and one op at a time, so the workers do not crowd each other's
# cores (a mirrored run in one worker took 117 s beside the other worker, 40 s with this).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import keras  # noqa: E402

from toolkit import plugins  # noqa: E402

SAMPLE_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
) * 6


def write_tiny_config(folder: Path, train: str = "epochs = 1", extra: str = "") -> Path:
    """A config that trains a very small stateful generator on SAMPLE_TEXT in seconds:
    ``train`` holds extra ``[train]`` keys, ``extra`` extra sections."""
    text = folder / "hamlet.txt"
    text.write_text(SAMPLE_TEXT, encoding="utf-8")
    path = folder / "tiny.toml"
    path.write_text(f"""
[corpus]
use = "text"
path = "{text}"

[[preprocess]]
use = "chars"

[encoder]
use = "embedding"
dim = 8

[sequences]
use = "stream"
batch_size = 4
length = 16

[core]
use = "lstm"
units = 16

{extra}

[train]
validation_fraction = 0.2
{train}
""")
    return path


@pytest.fixture
def tiny_config(tmp_path):
    """The tiny config (one epoch) in the test's folder."""
    return write_tiny_config(tmp_path)


@pytest.fixture
def register_plugin():
    """Register plugin objects by name for one test; unregistered afterwards."""
    manager = plugins.plugin_manager()
    added = []

    def register(plugin, name):
        manager.register(plugin, name=name)
        added.append(plugin)
        return plugin

    yield register
    for plugin in added:
        manager.unregister(plugin)


@pytest.fixture(autouse=True)
def fresh_keras_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield
