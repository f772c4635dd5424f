"""Training: config -> data -> model -> ``fit`` -> a run directory that can be resumed."""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path

import keras

from toolkit import config as config_module
from toolkit import runs
from toolkit.data import cache_settings, prepare
from toolkit.errors import ToolkitError
from toolkit.model import build_model, compile_model
from toolkit.plugins import registry
from toolkit.preprocess import Preprocessor
from toolkit.runs import Run
from toolkit.state import reset_states

# Keys that may change when a run is resumed: how long to train, not what to train.
RESUMABLE_CHANGES = {("train", "epochs"), ("train", "max_minutes")}


class TrainingClock(keras.callbacks.Callback):
    """Adds ``elapsed_minutes`` (training time, resumed runs included) and ``tokens_per_second``
    (positions trained per second of the epoch's training steps) to the epoch logs."""

    def __init__(self, positions_per_batch: int, prior_seconds: float = 0.0):
        super().__init__()
        self.positions_per_batch = positions_per_batch
        self.seconds = prior_seconds
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.train_seconds = None
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_test_begin(self, logs=None):
        if self.train_seconds is None and hasattr(self, "epoch_start"):
            self.train_seconds = time.perf_counter() - self.epoch_start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.epoch_start
        train_seconds = self.train_seconds or (time.perf_counter() - self.epoch_start)
        rate = self.batches * self.positions_per_batch / train_seconds
        self.rates.append(rate)
        if logs is not None:
            logs["elapsed_minutes"] = self.seconds / 60
            logs["tokens_per_second"] = rate


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model with its optimizer state after every epoch, atomically."""

    def __init__(self, run: Run, clock: TrainingClock):
        super().__init__()
        self.run, self.clock = run, clock

    def on_epoch_end(self, epoch, logs=None):
        runs.atomic_save_model(self.model, self.run.file(runs.CHECKPOINT))
        runs.write_json(self.run.file(runs.PROGRESS),
                        {"epochs_done": epoch + 1, "training_seconds": self.clock.seconds})


class TimeLimit(keras.callbacks.Callback):
    """Stops training after the epoch in which the training time passes ``minutes``."""

    def __init__(self, minutes: float, clock: TrainingClock):
        super().__init__()
        self.minutes, self.clock = minutes, clock

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and self.clock.seconds >= self.minutes * 60:
            self.model.stop_training = True


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[tuple[str, ...]]:
    """Key paths whose values differ between two resolved configs."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [(key, *rest) for rest in changed_keys(a, b)]
        elif a != b:
            changes.append((key,))
    return changes


def resumed_config(run: Run, config_path: str | None, overrides: list[str]) -> dict:
    """The run's stored config, with only ``train.epochs`` / ``train.max_minutes`` changeable."""
    stored = run.config()
    if config_path is None and not overrides:
        return stored
    raw = config_module.read(config_path) if config_path else config_module.read(
        run.file(runs.CONFIG))
    new = config_module.resolve(config_module.apply_overrides(raw, overrides), registry(),
                                source=str(config_path or run.file(runs.CONFIG)))
    changes = [c for c in changed_keys(stored, new) if c not in RESUMABLE_CHANGES]
    if changes:
        keys = ", ".join(".".join(map(str, c)) for c in changes)
        raise ToolkitError(
            f"cannot resume {run.path} with a different config: {keys} differ from the "
            f"run's {runs.CONFIG}; only train.epochs and train.max_minutes may change. "
            f"Start a new run with another --run-dir instead")
    return new


def best_validation(path: Path) -> float | None:
    """The lowest validation perplexity recorded in a history file, if any."""
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        values = [float(r["val_perplexity"]) for r in csv.DictReader(f)
                  if r.get("val_perplexity")]
    return min(values) if values else None


def trim_history(path: Path, epochs_done: int) -> None:
    """Drop history rows of epochs that the checkpoint does not hold."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    runs.atomic_write(path, "".join(",".join(r) + "\n" for r in kept))


def train(config_path: str | None, run_dir: str | Path, overrides: list[str] = (),
          resume: bool = False, verbose: str | int = "auto", overwrite: bool = False) -> Run:
    """Train the model a config describes into ``run_dir`` (or continue it with ``resume``).

    ``overwrite`` replaces an existing run, once the new config and data have been checked.
    """
    reg = registry()
    run = Run(run_dir)
    overrides = list(overrides)
    if resume:
        run.require()
        resolved = resumed_config(run, config_path, overrides)
    else:
        if config_path is None:
            raise ToolkitError("a config file is needed to start a run")
        resolved = config_module.load(config_path, reg, overrides)
        if run.exists() and not overwrite:
            raise ToolkitError(f"{run.path} already holds a run; pass --resume to continue it, "
                               f"--overwrite to replace it, or choose another --run-dir")
    settings = resolved["train"]
    components = config_module.build_components(resolved, reg, source=config_path)
    preprocessor = Preprocessor(components.stages)
    prepared = prepare(components.corpus, preprocessor, resolved["vocab"],
                       settings["validation_fraction"], run.vocab() if resume else None,
                       cache_settings(resolved) if settings["cache"] else None)
    builder = components.sequences
    progress = run.progress() if resume else {"training_seconds": 0.0}
    train_data = builder.training(prepared.train_ids, settings["seed"])
    val_data = builder.validation(prepared.val_ids) if len(prepared.val_ids) else None

    if overwrite and not resume and run.exists():
        for name in runs.RUN_FILES:  # only a run's own files: never a folder's other content
            run.file(name).unlink(missing_ok=True)
    run.path.mkdir(parents=True, exist_ok=True)
    runs.atomic_write(run.file(runs.CONFIG), config_module.dumps(resolved))
    if not resume:
        runs.write_json(run.file(runs.VOCAB), prepared.vocab.to_json())

    if resume and run.file(runs.CHECKPOINT).is_file():
        model = keras.saving.load_model(run.file(runs.CHECKPOINT))
        # The checkpoint's own step count says how many epochs it holds, even if the
        # process died between writing it and writing progress.json.
        first_epoch = int(model.optimizer.iterations) // len(train_data)
        train_data.set_epoch(first_epoch)
    else:
        keras.utils.set_random_seed(settings["seed"])
        model = build_model(components, len(prepared.vocab), builder.batch_size,
                            builder.stateful)
        compile_model(model, components, settings)
        first_epoch = 0
    trim_history(run.file(runs.HISTORY), first_epoch)

    clock = TrainingClock(builder.batch_size * builder.length,
                          progress.get("training_seconds", 0.0))
    callbacks = [
        clock,
        *builder.callbacks(train_data),
        keras.callbacks.CSVLogger(str(run.file(runs.HISTORY)), append=first_epoch > 0),
        RunCheckpoint(run, clock),
        TimeLimit(settings["max_minutes"], clock),
    ]
    if val_data is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run.file(runs.BEST)), monitor="val_perplexity", mode="min",
            save_best_only=True, initial_value_threshold=best_validation(
                run.file(runs.HISTORY)) if first_epoch else None, verbose=0))
    if first_epoch < settings["epochs"]:
        model.fit(train_data.dataset(),
                  validation_data=None if val_data is None else val_data.dataset(),
                  epochs=settings["epochs"], initial_epoch=first_epoch, callbacks=callbacks,
                  shuffle=False, verbose=verbose)
    if settings["keep"] == "best" and run.file(runs.BEST).is_file():
        model.load_weights(run.file(runs.BEST))
    runs.atomic_save_model(model, run.file(runs.MODEL))
    runs.write_json(run.file(runs.METRICS),
                    summarize(model, val_data, prepared.stats, run, clock))
    return run


def summarize(model, val_data, data_stats: dict, run: Run, clock: TrainingClock) -> dict:
    """The run's figures: exact validation loss of the final model, history, throughput."""
    metrics = {"data": {k: v for k, v in data_stats.items() if k != "cache"},
               "epochs_done": run.progress()["epochs_done"],
               "training_minutes": round(clock.seconds / 60, 3)}
    if clock.rates:
        metrics["train_tokens_per_second_median"] = round(statistics.median(clock.rates), 1)
    if val_data is not None:
        reset_states(model)
        results = model.evaluate(val_data.dataset(), return_dict=True, verbose=0)
        nats = math.log(results["perplexity"])
        metrics["validation"] = {"nats_per_token": round(nats, 5),
                                 "bits_per_token": round(nats / math.log(2), 5),
                                 "perplexity": round(results["perplexity"], 4)}
    return metrics
