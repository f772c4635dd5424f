"""Run directories: everything a training run writes.

Files the toolkit writes are replaced atomically (written aside, then renamed);
``history.csv`` is appended by Keras's ``CSVLogger`` (and trimmed to the checkpoint on
resume) and ``best.keras`` is written by Keras's ``ModelCheckpoint``. A run directory
holds::

    config.toml       the resolved config (every default filled in)
    vocab.json        the vocabulary, ids 0 and 1 reserved for padding and unknown
    labels.json       the authors of an attribution run: class i is labels[i]
    split.json        where every segment of every split came from ("name:start-stop")
    checkpoint.keras  the model after the last finished epoch, optimizer state included
    best.keras        the model of the epoch with the lowest validation loss so far
    progress.json     how many epochs the checkpoint holds, and training time so far
    history.csv       Keras's per-epoch logs (loss, perplexity, validation, elapsed time)
    model.keras       the final model: the best epoch (train.keep = "best") or the last
    metrics.json      validation loss in nats and bits per token, throughput, data sizes
    evaluation.json   the report of ``toolkit evaluate`` (and confusion.png for attribution)
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import cached_property
from pathlib import Path

import keras

from toolkit import config as config_module
from toolkit.errors import ToolkitError
from toolkit.plugins import load_plugins, registry
from toolkit.preprocess import Preprocessor
from toolkit.vocab import Vocabulary

CONFIG, VOCAB, CHECKPOINT, PROGRESS = "config.toml", "vocab.json", "checkpoint.keras", "progress.json"
HISTORY, MODEL, METRICS, BEST = "history.csv", "model.keras", "metrics.json", "best.keras"
LABELS, SPLIT, EVALUATION, CONFUSION = "labels.json", "split.json", "evaluation.json", "confusion.png"
RUN_FILES = (CONFIG, VOCAB, CHECKPOINT, PROGRESS, HISTORY, MODEL, METRICS, BEST, LABELS, SPLIT,
             EVALUATION, CONFUSION)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class Run:
    """A run directory: the files training writes, and the trained run they make.

    ``Run.open(path)`` is how every command reads a trained run: its config,
    components, vocabulary, labels and model are each read once, when first used,
    and the config is the one stored at training time (not re-validated against
    today's plugins).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """An existing run directory, checked to hold a run."""
        return cls(path).require()

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file(CONFIG).is_file()

    def require(self) -> "Run":
        if not self.path.is_dir():
            raise ToolkitError(f"run directory not found: {self.path}")
        if not self.exists():
            raise ToolkitError(f"{self.path} is not a run directory (no {CONFIG}); "
                               f"create one with `toolkit train CONFIG --run-dir {self.path}`")
        return self

    @cached_property
    def config(self) -> dict:
        """The resolved config stored at training time."""
        return config_module.upgrade_stored(config_module.read(self.file(CONFIG)))

    @cached_property
    def components(self) -> config_module.Components:
        """The run's components, made from its stored config."""
        return config_module.build_components(self.config, registry(),
                                              source=str(self.file(CONFIG)))

    @property
    def head(self):
        return self.components.head

    @property
    def builder(self):
        return self.components.sequences

    @cached_property
    def preprocessor(self) -> Preprocessor:
        return Preprocessor(self.components.stages)

    @cached_property
    def vocab(self) -> Vocabulary:
        return Vocabulary.load(self.file(VOCAB))

    @cached_property
    def labels(self) -> list[str]:
        """The run's authors (empty for a run without labels)."""
        path = self.file(LABELS)
        return json.loads(path.read_text())["labels"] if path.is_file() else []

    @cached_property
    def model(self) -> keras.Model:
        """The trained model (see :meth:`load_model`), loaded once."""
        return self.load_model()

    def progress(self) -> dict:
        path = self.file(PROGRESS)
        return json.loads(path.read_text()) if path.is_file() else {"epochs_done": 0}

    def metrics(self) -> dict:
        return json.loads(self.file(METRICS).read_text())

    def load_model(self) -> keras.Model:
        """The final model, or the last checkpoint of an unfinished run, read from disk."""
        for name in (MODEL, CHECKPOINT):
            if self.file(name).is_file():
                return load_keras_file(self.file(name))
        raise ToolkitError(f"run {self.path} has no model yet ({MODEL} or {CHECKPOINT}); "
                           f"train it first or resume it with --resume")


def load_keras_file(path: Path) -> keras.Model:
    """Load a ``.keras`` file; a damaged, foreign or unsafe file is one error naming it."""
    load_plugins()  # plugin modules register their Keras layers when imported
    try:
        return keras.saving.load_model(path)
    except Exception as err:  # Keras raises many types for a bad file
        raise ToolkitError(f"{path}: cannot be loaded as a toolkit model ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'no details'}); the "
                           f"file is damaged or was not written by this toolkit: delete it "
                           f"and train again (or --resume from the checkpoint)") from None
