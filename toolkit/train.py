"""Training: config -> data -> model -> ``fit`` -> a run directory that can be resumed."""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

import keras

from toolkit import config as config_module
from toolkit import runs
from toolkit.data import prepare_config
from toolkit.errors import ToolkitError
from toolkit.model import (build_model, compile_model, copy_core, core_layers,
                           set_core_trainable)
from toolkit.plugins import registry
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
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and self.clock.seconds >= self.minutes * 60:
            self.model.stop_training = self.stopped = True


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


def best_validation(path: Path, monitor: str) -> float | None:
    """The lowest value of ``monitor`` recorded in a history file, if any."""
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        values = [float(r[monitor]) for r in csv.DictReader(f) if r.get(monitor)]
    return min(values) if values else None


def source_run(resolved: dict, run: Run) -> Run | None:
    """The run named by ``core.init_from``, checked to tokenize text as this config does."""
    init_from = resolved["core"].get("init_from")
    if init_from is None:
        return None
    source = Run(init_from)
    if source.path.resolve() == run.path.resolve():
        raise ToolkitError(f"core.init_from = {init_from!r} is the run being written; "
                           f"start the new run in another --run-dir")
    try:
        source.require()
    except ToolkitError as err:
        raise ToolkitError(f"core.init_from: {err}") from None
    theirs = source.config()
    if theirs["preprocess"] != resolved["preprocess"]:
        raise ToolkitError(f"core.init_from = {init_from!r}: that run preprocesses text "
                           f"differently, so its vocabulary does not fit; copy its "
                           f"[[preprocess]] stages into this config")
    return source


def recompile(model: keras.Model, components, settings: dict) -> None:
    """Compile again (after freezing or unfreezing), keeping the optimizer's step count."""
    steps = int(model.optimizer.iterations)
    compile_model(model, components, settings)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps)


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
    fresh = not (resume and run.file(runs.CHECKPOINT).is_file())
    source = source_run(resolved, run) if fresh else None
    builder = components.sequences
    known_vocab = source.vocab() if source else run.vocab() if resume else None
    prepared = prepare_config(components, resolved, known_vocab)
    labels = [] if components.head.target == "next-token" else (
        run.labels() if resume else prepared.labels)
    progress = run.progress() if resume else {"training_seconds": 0.0}
    splits = prepared.splits
    train_data = builder.training(builder.data(splits["train"], labels, training=True),
                                  settings["seed"])
    val_data = None
    if len(splits["validation"]):
        val_data = builder.validation(builder.data(splits["validation"], labels))

    if overwrite and not resume and run.exists():
        for name in runs.RUN_FILES:  # only a run's own files: never a folder's other content
            run.file(name).unlink(missing_ok=True)
    run.path.mkdir(parents=True, exist_ok=True)
    runs.atomic_write(run.file(runs.CONFIG), config_module.dumps(resolved))
    if not resume:
        runs.write_json(run.file(runs.VOCAB), prepared.vocab.to_json())
        runs.write_json(run.file(runs.SPLIT), {name: split.sources
                                               for name, split in splits.items()})
        if labels:
            runs.write_json(run.file(runs.LABELS), {"labels": labels})

    core = resolved["core"]
    source_model = source.load_model() if source is not None else None
    if not fresh:
        model = keras.saving.load_model(run.file(runs.CHECKPOINT))
        # The checkpoint's own step count says how many epochs it holds, even if the
        # process died between writing it and writing progress.json.
        first_epoch = int(model.optimizer.iterations) // len(train_data)
        train_data.set_epoch(first_epoch)
    else:
        keras.utils.set_random_seed(settings["seed"])
        model = build_model(components, len(prepared.vocab), builder.batch_size,
                            builder.stateful, labels)
        if source_model is not None:
            copy_core(source_model, model, where=f"core.init_from = {core['init_from']!r}")
            set_core_trainable(model, not core["freeze"])
        compile_model(model, components, settings)
        first_epoch = 0
    trim_history(run.file(runs.HISTORY), first_epoch)

    clock = TrainingClock(builder.batch_size * builder.length,
                          progress.get("training_seconds", 0.0))
    time_limit = TimeLimit(settings["max_minutes"], clock)
    monitor = components.head.monitor
    callbacks = [
        clock,
        *builder.callbacks(train_data),
        RunCheckpoint(run, clock),
        time_limit,
    ]
    if val_data is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run.file(runs.BEST)), monitor=monitor, mode="min",
            save_best_only=True, initial_value_threshold=best_validation(
                run.file(runs.HISTORY), monitor) if first_epoch else None, verbose=0))
    # A frozen core is unfrozen at epoch core.unfreeze_after: fit runs in two phases.
    unfreeze_at = core["unfreeze_after"] or settings["epochs"]
    for start, stop in ((first_epoch, min(unfreeze_at, settings["epochs"])),
                        (max(first_epoch, unfreeze_at), settings["epochs"])):
        if start >= stop or time_limit.stopped:
            continue
        if start >= unfreeze_at and not all(layer.trainable for layer in core_layers(model)):
            set_core_trainable(model, True)
            recompile(model, components, settings)
        history = keras.callbacks.CSVLogger(str(run.file(runs.HISTORY)), append=start > 0)
        model.fit(train_data.dataset(),
                  validation_data=None if val_data is None else val_data.dataset(),
                  epochs=stop, initial_epoch=start, callbacks=[*callbacks, history],
                  shuffle=False, verbose=verbose)
    if settings["keep"] == "best" and run.file(runs.BEST).is_file():
        model.load_weights(run.file(runs.BEST))
    runs.atomic_save_model(model, run.file(runs.MODEL))
    runs.write_json(run.file(runs.METRICS),
                    summarize(model, components.head, val_data, prepared.stats, run, clock))
    return run


def summarize(model, head, val_data, data_stats: dict, run: Run, clock: TrainingClock) -> dict:
    """The run's figures: validation figures of the final model, history, throughput."""
    metrics = {"data": {k: v for k, v in data_stats.items() if k != "cache"},
               "epochs_done": run.progress()["epochs_done"],
               "training_minutes": round(clock.seconds / 60, 3)}
    if clock.rates:
        metrics["train_tokens_per_second_median"] = round(statistics.median(clock.rates), 1)
    if val_data is not None:
        reset_states(model)
        results = model.evaluate(val_data.dataset(), return_dict=True, verbose=0)
        metrics["validation"] = head.summarize(results)
    return metrics
