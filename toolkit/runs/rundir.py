"""Run directories: everything a training run writes, and the trained run they make.

Every file the toolkit writes in a run is replaced atomically and durably (a temporary
file, fsync, rename, fsync of the folder), so a kill at any moment leaves each file
whole: old or new. The per-epoch files are written by
:class:`toolkit.training.callbacks.RunWriter` in an order that resume can always continue from.
A run directory holds::

    config.toml       the resolved config (every default filled in)
    vocab.json        the vocabulary, ids 0 and 1 reserved for padding and unknown
    labels.json       the authors of an attribution run: class i is labels[i]
    split.json        where every segment of every split came from ("name:start-stop")
    history.csv       one row per epoch the checkpoint holds (loss, figures, time)
    best.keras        the model of the epoch with the best monitored figure so far
    checkpoint.keras  the model after the last finished epoch, optimizer state included
    progress.json     how many epochs the checkpoint holds, and training time so far
    model.keras       the final model: the best epoch (train.keep = "best") or the last
    metrics.json      the final model's validation figures, throughput, data sizes
    samples.json      generator runs: a text sampled after every epoch
    curves.png        the training curves, per epoch and against training minutes
    logs/             TensorBoard logs (``tensorboard --logdir runs/``); append-only
    calibration.json  attribution runs: per-author offsets, temperature and the "unknown"
                      threshold, fitted on the validation split when training ends
    evaluation.json   the report of ``toolkit evaluate`` (and confusion.png and
                      reliability.png for attribution); removed when training resumes,
                      since it describes an older model
    ensemble.pkl      attribution runs, fitted at the end of training (and by ``toolkit
                      calibrate``): the n-gram model
                      and the weights that stack it with the LSTM (``attribute --model
                      ensemble``); removed when training resumes
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import tempfile
from functools import cached_property
from pathlib import Path

from toolkit.config import schema as config_module
from toolkit.config.typed import Config, Origin, tables
from toolkit.errors import ToolkitError
from toolkit.plugins import load_plugins, registry
from toolkit.data.preprocess import Preprocessor
from toolkit.data.vocab import Vocabulary

CONFIG, VOCAB, CHECKPOINT, PROGRESS = "config.toml", "vocab.json", "checkpoint.keras", "progress.json"
HISTORY, MODEL, METRICS, BEST = "history.csv", "model.keras", "metrics.json", "best.keras"
LABELS, SPLIT, EVALUATION, CONFUSION = "labels.json", "split.json", "evaluation.json", "confusion.png"
SAMPLES, CURVES, LOGS, REPORT = "samples.json", "curves.png", "logs", "report.html"
CALIBRATION, RELIABILITY, ENSEMBLE = "calibration.json", "reliability.png", "ensemble.pkl"
PRETRAINED, PRETRAIN = "pretrained.keras", "pretrain.json"
CROSSVAL = "crossval.json"  # in a `toolkit crossval` directory, beside its fold runs
TMP_SUFFIX = ".tmp"
RUN_FILES = (CONFIG, VOCAB, CHECKPOINT, PROGRESS, HISTORY, MODEL, METRICS, BEST, LABELS, SPLIT,
             EVALUATION, CONFUSION, SAMPLES, CURVES, REPORT, CALIBRATION, RELIABILITY,
             ENSEMBLE, PRETRAINED, PRETRAIN)
# What describes one trained model and goes stale when training resumes.
STALE_ON_RESUME = (EVALUATION, CONFUSION, CALIBRATION, RELIABILITY, ENSEMBLE)


# Test-only fault injection: TOOLKIT_FAULT_AT=N kills the process (SIGKILL) at the Nth
# fault point of a run's writes, each write having two: its temporary file half written,
# and just after the rename. tests/test_reliability.py kills training at every point.
FAULT_ENV = "TOOLKIT_FAULT_AT"
_fault_count = 0


def fault_point(partial: Path | None = None) -> None:
    """Die here if ``$TOOLKIT_FAULT_AT`` says so, leaving ``partial`` cut to half its size."""
    global _fault_count
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    _fault_count += 1
    if _fault_count == int(wanted):
        if partial is not None and partial.exists():
            with partial.open("r+b") as f:
                f.truncate(partial.stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it over ``path`` and fsync the folder; readers see the old
    file or the new one, never half of one."""
    fault_point(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # as Keras and most tools leave files, not mkstemp's 0600
    os.replace(tmp, path)
    fsync_directory(path.parent)
    fault_point()


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes)
              else os.fdopen(fd, "w", encoding="utf-8")) as f:
            f.write(text)
        replace_durably(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_model(model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then rename it into place durably."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}{TMP_SUFFIX}.keras")
    try:
        model.save(tmp)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_history(path: Path) -> list[dict]:
    """The rows of a run's ``history.csv`` (epoch first), or none."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("epoch")]


def write_history(path: Path, rows: list[dict]) -> None:
    """Write history rows atomically, columns ``epoch`` then the others sorted."""
    columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue())


def trim_history(path: Path, epochs_done: int) -> list[dict]:
    """Keep the rows of the epochs a checkpoint holds; returns them."""
    rows = read_history(path)
    kept = [row for row in rows if int(row["epoch"]) < epochs_done]
    if len(kept) != len(rows):
        write_history(path, kept)
    return kept


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files a killed process left in a run directory; returns them."""
    stale = [p for p in folder.glob(f".*{TMP_SUFFIX}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def stored_origins(stored: dict, path: str) -> dict:
    """Every key path of a run's stored config, from that run."""
    origin = Origin("stored run", path)
    return {(*prefix, key): origin for prefix, table in tables(stored) for key in table}


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
    def config(self) -> Config:
        """The resolved config stored at training time (every value's origin: this run)."""
        stored = config_module.upgrade_stored(config_module.read(self.file(CONFIG)))
        return Config.of(stored, stored_origins(stored, str(self.file(CONFIG))),
                         str(self.file(CONFIG)))

    @cached_property
    def components(self) -> config_module.Components:
        """The run's components, made from its stored config."""
        return config_module.build_components(self.config, registry(),
                                              config_file=str(self.file(CONFIG)))

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
    def model(self):
        """The trained model (see :meth:`load_model`), loaded once."""
        return self.load_model()

    @property
    def history(self) -> list[dict]:
        """One dict of numbers per epoch the run holds (``epoch``, ``loss``, ``val_nats``, ...)."""
        return [{key: int(value) if key == "epoch" else float(value)
                 for key, value in row.items() if value not in ("", None)}
                for row in read_history(self.file(HISTORY))]

    def progress(self) -> dict:
        path = self.file(PROGRESS)
        return json.loads(path.read_text()) if path.is_file() else {"epochs_done": 0}

    def metrics(self) -> dict:
        return json.loads(self.file(METRICS).read_text())

    def load_model(self):
        """The final model, or the last checkpoint of an unfinished run, read from disk."""
        for name in (MODEL, CHECKPOINT):
            if self.file(name).is_file():
                return load_keras_file(self.file(name))
        raise ToolkitError(f"run {self.path} has no model yet ({MODEL} or {CHECKPOINT}); "
                           f"train it first or resume it with --resume")


def load_keras_file(path: Path):
    """Load a ``.keras`` file; a damaged, foreign or unsafe file is one error naming it."""
    from toolkit.backend import load_tensorflow

    load_tensorflow()
    import keras

    import toolkit.model.layers  # noqa: F401  (registers the toolkit's serializable layers)
    import toolkit.model.optimizers  # noqa: F401  (and its optimizers: init.lr_decay)

    load_plugins()  # plugin modules register their own Keras layers when imported
    try:
        return keras.saving.load_model(path)
    except Exception as err:  # Keras raises many types for a bad file
        raise ToolkitError(f"{path}: cannot be loaded as a toolkit model ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'no details'}); the "
                           f"file is damaged or was not written by this toolkit: delete it "
                           f"and train again (or --resume from the checkpoint)") from None
