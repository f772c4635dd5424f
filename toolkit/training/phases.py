"""Training: config -> data -> model -> ``fit`` -> a run directory that can be resumed.

:func:`train` runs in named phases. Everything that can be refused (the config, the
corpus, the split, the model and the weights it starts from) is checked before the
first file of the run is written, and TensorFlow is imported only once the data is
ready.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.backend import use_keras_backend
from toolkit.config import schema as config_module
from toolkit.runs import rundir as runs
from toolkit.data.prepare import Prepared, prepare_config
from toolkit.errors import ConfigError, ToolkitError, TrainingDiverged
from toolkit.hookspecs import EpochData, HeadContext
from toolkit.plugins import registry
from toolkit.data.preprocess import Preprocessor
from toolkit.training.pretrain import check_pretraining
from toolkit.runs.rundir import Run

# Keys that may change when a run is resumed: how long to train, not what to train.
RESUMABLE_CHANGES = {("train", key) for key in ("epochs", "max_minutes", "on_divergence",
                                                 "divergence_steps", "tensorboard",
                                                 "sample_length", "xla", "backend", "patience",
                                                 "preprocess_workers")}


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[tuple[str, ...]]:
    """Key paths whose values differ between two resolved configs."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += [(key, *rest) for rest in changed_keys(a, b)]
        elif a != b:
            changes.append((key,))
    return changes


def resumed_config(run: Run, config_path: str | None, overrides: list[str]) -> dict:
    """The run's stored config, with only the keys of ``RESUMABLE_CHANGES`` (how long and how
    watchfully to train, not what to train) changeable."""
    stored = run.config
    if config_path is None and not overrides:
        return stored
    new = config_module.load(config_path if config_path is not None else
                             config_module.upgrade_stored(config_module.read(
                                 run.file(runs.CONFIG))), registry(), overrides,
                             config_file=None if config_path else str(run.file(runs.CONFIG)))
    changes = [c for c in changed_keys(stored, new) if c not in RESUMABLE_CHANGES]
    if changes:
        keys = ", ".join(".".join(map(str, c)) for c in changes)
        raise ToolkitError(
            f"cannot resume {run.path} with a different config: {keys} differ from the "
            f"run's {runs.CONFIG}; only "
            f"{', '.join(f'{a}.{b}' for a, b in sorted(RESUMABLE_CHANGES))} may change. "
            f"Start a new run with another --run-dir instead")
    return new


def init_source(resolved: dict, run: Run) -> Run | None:
    """The run named by ``[init] run``, checked to tokenize text as this config does."""
    init = resolved.init
    if init.get("run") is None:
        return None
    init_run = Run(init["run"])
    if init_run.path.resolve() == run.path.resolve():
        raise ToolkitError(f"init.run = {init['run']!r} is the run being written; "
                           f"start the new run in another --run-dir")
    try:
        init_run.require()
    except ToolkitError as err:
        raise ToolkitError(f"init.run: {err}") from None
    if "encoder" in init["copy"] and init_run.config.preprocess != resolved.preprocess:
        raise ToolkitError(f"init.run = {init['run']!r}: that run preprocesses text "
                           f"differently, so its vocabulary (which comes with its encoder) "
                           f"does not fit; copy its [[preprocess]] stages into this config, "
                           f"or set init.copy = [\"core\"]")
    return init_run


@dataclass
class Session:
    """What one ``train`` call works with, gathered phase by phase."""

    run: Run
    resolved: dict
    components: config_module.Components
    resume: bool
    config_file: str
    init_run: Run | None = None
    prepared: Prepared | None = None
    labels: list | None = None
    train_data: EpochData | None = None
    val_data: EpochData | None = None
    stopped_by: str | None = None
    pretrained: Any = None  # a toolkit.training.pretrain.Pretrained once [pretrain] has run
    strategy: Any = None  # a tf.distribute.Strategy when train.distribute is not "none"
    compile_settings: Any = None  # [train] with xla = "auto" settled (settle_xla)

    @property
    def settings(self) -> dict:
        return self.resolved.train

    def scope(self):
        """The strategy's scope, where variables are made (nothing without a strategy)."""
        return self.strategy.scope() if self.strategy is not None else nullcontext()

    def dataset(self, data):
        """``data`` as ``fit`` and ``evaluate`` read it: split by replica when distributed."""
        from toolkit.training.distribute import distributed_dataset

        return distributed_dataset(data, self.strategy)

    @property
    def restores(self) -> bool:
        """A resumed run with a checkpoint to continue from."""
        return self.resume and self.run.file(runs.CHECKPOINT).is_file()


def train(config_path: str | Path | dict | None, run_dir: str | Path, overrides: list[str] = (),
          resume: bool = False, verbose: str | int = "auto", overwrite: bool = False,
          progress_seconds: float = 0.0) -> Run:
    """Train the model a config describes into ``run_dir`` (or continue it with ``resume``).

    ``overwrite`` replaces an existing run, once the new config, data and model have
    been checked. ``progress_seconds`` > 0 prints a progress line that often within an
    epoch (for output that is not a terminal). Raises :class:`TrainingDiverged` when the
    loss diverges (unless ``train.on_divergence = "continue"``), keeping the last good
    checkpoint.
    """
    session = open_session(config_path, Run(run_dir), list(overrides), resume, overwrite)
    with errors_name(session.config_file):
        prepare_data(session)
        if session.resolved.pretrain.epochs and not session.restores:
            from toolkit.training.pretrain import pretrain

            session.pretrained = pretrain(session.resolved, session.components,
                                          session.prepared, session.init_run, verbose,
                                          progress_seconds)
        model, first_epoch = build_or_restore_model(session)
        check_monitor(session)
    write_run_files(session, overwrite)
    clock, guard = fit_epochs(session, model, first_epoch, verbose, progress_seconds)
    if guard.stopped:
        done = Run(session.run.path).progress()["epochs_done"]
        clipnorm = session.settings.clipnorm
        clipping_hint = (" or gradient clipping (train.clipnorm)" if not clipnorm else
                         f"; clipping (train.clipnorm = {clipnorm}) bounds the gradient, "
                         f"not the size of the step the learning rate makes")
        raise TrainingDiverged(
            f"training diverged: {guard.reason}. Nothing of that epoch was kept: "
            f"{session.run.path} holds {done} good epoch(s). Train again with a lower "
            f"train.learning_rate (now {session.settings.learning_rate}){clipping_hint}, "
            f"or set train.on_divergence = \"continue\"")
    finish_run(session, model, clock)
    return Run(session.run.path)


@contextmanager
def errors_name(config_file: str):
    """Adds the config file to a :class:`ConfigError` raised without one."""
    try:
        yield
    except ConfigError as error:
        if error.config_file is not None:
            raise
        raise ConfigError(error.path, error.message, config_file) from None


def keras_version() -> str:
    from importlib.metadata import version

    return version("keras")


def check_backend(resolved, components, config_file: str) -> None:
    """Refuse, before any work, what ``train.backend = "jax"`` cannot train correctly."""
    if resolved.train.backend != "jax":
        return
    if resolved.train.distribute != "none":
        raise ConfigError("train.distribute", "tf.distribute trains on TensorFlow only; set "
                                              "train.backend = \"tensorflow\" or distribute = "
                                              "\"none\"", config_file)
    if resolved.pretrain.epochs:
        raise ConfigError("train.backend", (
            "\"jax\" cannot run [pretrain]: pretraining trains stateful streams, whose "
            "state Keras's JAX trainer does not carry between steps; pretrain with "
            "backend = \"tensorflow\" (then init.run can start a JAX run from it)"),
            config_file)
    if components.sequences.stateful:
        raise ConfigError("train.backend", (
            f"\"jax\" cannot train sequences.use = {resolved.sequences.use!r}: Keras "
            f"{keras_version()}'s JAX trainer does not carry a stateful RNN's state from one "
            f"compiled step to the next (it keeps the rnn_state variables out of the "
            f"variables it passes through the step), so every batch would start from a "
            f"zero state; train stateful streams with backend = \"tensorflow\", or use "
            f"sequences.use = \"windows\" or \"passages\" on JAX"), config_file)


def open_session(config_path, run: Run, overrides: list[str], resume: bool,
                 overwrite: bool) -> Session:
    """Phase 1: the resolved config and its components, checked before any data is read."""
    if resume and config_path is not None and not run.exists():
        resume = False  # killed before its config was written: start it
    if resume:
        run.require()
        resolved = resumed_config(run, config_path, overrides)
        config_file = str(run.file(runs.CONFIG))
    else:
        if config_path is None:
            raise ToolkitError("a config file is needed to start a run")
        resolved = config_module.load(config_path, registry(), overrides)
        if run.exists() and not overwrite:
            raise ToolkitError(f"{run.path} already holds a run; pass --resume to continue it, "
                               f"--overwrite to replace it, or choose another --run-dir")
        config_file = config_module.config_file_name(config_path)
    components = config_module.build_components(resolved, registry(), config_file=config_file)
    check_pretraining(resolved, components, config_file)
    check_backend(resolved, components, config_file)
    use_keras_backend(resolved.train.backend, config_file)
    session = Session(run, resolved, components, resume, config_file)
    if resolved.train.distribute != "none":
        from toolkit.training.distribute import make_strategy, replica_batch

        with errors_name(config_file):
            session.strategy = make_strategy(resolved.train.distribute)
            replica_batch(components.sequences.batch_size, session.strategy,
                          components.sequences.stateful)
    if not session.restores:
        session.init_run = init_source(resolved, run)
    return session


def prepare_data(session: Session) -> None:
    """Phase 2: token ids, split and vocabulary (this run's, the init run's, or a new one),
    then the training and validation batches."""
    run, builder = session.run, session.components.sequences
    if session.resume:
        known_vocab = run.vocab
    elif session.init_run is not None and "encoder" in session.resolved.init.copy:
        known_vocab = session.init_run.vocab
    else:
        known_vocab = None
    prepared = prepare_config(session.components, session.resolved, known_vocab)
    labels = []
    if session.components.head.labelled:
        labels = run.labels if session.resume else prepared.labels
    session.prepared, session.labels = prepared, labels
    splits = prepared.splits
    session.train_data = builder.training(builder.data(splits["train"], labels, training=True),
                                          session.settings.seed)
    if len(splits["validation"]):
        session.val_data = builder.validation(builder.data(splits["validation"], labels))


def build_or_restore_model(session: Session):
    """Phase 3: the checkpoint of a resumed run, or a new compiled model (with the init
    run's weights copied in). Returns the model and the first epoch to train. A
    distributed run makes it in its strategy's scope, with its state kept per replica."""
    with session.scope():
        model, first_epoch = restore_or_build(session)
        if session.strategy is not None:
            from toolkit.training.distribute import keep_state_per_replica

            keep_state_per_replica(model)
    return model, first_epoch


def restore_or_build(session: Session):
    """:func:`build_or_restore_model` inside the strategy's scope."""
    from toolkit.model.assembly import (build_model, compile_model, copy_weights, set_trainable,
                                        settle_xla, uses_xla)

    run, components, settings = session.run, session.components, session.settings
    if session.restores:
        model = runs.load_keras_file(run.file(runs.CHECKPOINT))
        session.compile_settings = settle_xla(model, components, settings, session.train_data,
                                              planned_steps(session))
        model.jit_compile = uses_xla(model, components, session.compile_settings["xla"],
                                     planned_steps(session))
        # The checkpoint's own step count says how many epochs it holds, even if the
        # process died between writing it and writing progress.json.
        first_epoch = steps_done(model) // len(session.train_data)
        session.train_data.set_epoch(first_epoch)
        progress = run.progress()
        if progress.get("epochs_done") != first_epoch:  # killed before progress.json
            runs.write_json(run.file(runs.PROGRESS), {
                "epochs_done": first_epoch,
                "training_seconds": progress.get("training_seconds", 0.0)})
        return model, first_epoch
    import keras  # loaded quietly by toolkit.model.assembly

    keras.utils.set_random_seed(settings.seed)
    builder = components.sequences
    rows = builder.batch_size
    if session.strategy is not None:
        from toolkit.training.distribute import replica_batch

        rows = replica_batch(rows, session.strategy, builder.stateful)
    model = build_model(components, len(session.prepared.vocab), rows, builder.stateful,
                        session.labels)
    init = session.resolved.init
    if session.pretrained is not None:  # it started from init.run's weights itself
        copy_weights(session.pretrained.model, model, init["copy"], where="[pretrain]",
                     heads=(session.pretrained.head, components.head))
        set_trainable(model, init["copy"], not init["freeze"])
    elif session.init_run is not None:
        try:
            copy_weights(session.init_run.model, model, init["copy"],
                         where=f"init.run = {init['run']!r}",
                         heads=(session.init_run.head, components.head))
        except ToolkitError as err:
            raise ConfigError("init.run", str(err)) from None
        set_trainable(model, init["copy"], not init["freeze"])
    session.compile_settings = (settings if session.strategy is not None else
                                settle_xla(model, components, settings, session.train_data,
                                           planned_steps(session)))
    compile_model(model, components, session.compile_settings, planned_steps(session),
                  session.resolved.init)
    return model, 0


def write_run_files(session: Session, overwrite: bool) -> None:
    """Phase 4: the run's config, vocabulary, split and labels. An older run's files go
    first (``--overwrite``); a resumed run loses its temporary files and its evaluation,
    which describes a model that is about to change."""
    run = session.run
    if overwrite and not session.resume and run.exists():
        for name in runs.RUN_FILES:  # only a run's own files: never a folder's other content
            run.file(name).unlink(missing_ok=True)
        shutil.rmtree(run.file(runs.LOGS), ignore_errors=True)
    run.path.mkdir(parents=True, exist_ok=True)
    runs.remove_stale_temporaries(run.path)
    if session.resume:
        for name in runs.STALE_ON_RESUME:
            run.file(name).unlink(missing_ok=True)
    if not session.resume:
        splits = session.prepared.splits
        runs.write_json(run.file(runs.VOCAB), session.prepared.vocab.to_json())
        runs.write_json(run.file(runs.SPLIT),
                        {name: split.places for name, split in splits.items()})
        if session.labels:
            runs.write_json(run.file(runs.LABELS), {"labels": session.labels})
    if session.pretrained is not None:  # also a resumed run that had no checkpoint yet
        runs.atomic_save_model(session.pretrained.model, run.file(runs.PRETRAINED))
        runs.write_json(run.file(runs.PRETRAIN), session.pretrained.figures)
    # Last: a folder with config.toml holds a run whose vocabulary, split and labels exist.
    runs.atomic_write(run.file(runs.CONFIG), config_module.dumps(session.resolved))


def fit_epochs(session: Session, model, first_epoch: int, verbose,
               progress_seconds: float = 0.0):
    """Phase 5: ``fit`` with the builder's callbacks, the run writer, the divergence guard
    and the time limit; frozen layers are unfrozen at ``init.unfreeze_after`` (``fit`` in
    two parts). Returns the clock and the guard."""
    import keras

    from toolkit.training.callbacks import (AttributionValidation, DivergenceGuard, FollowEpochs,
                                   EpochLine, LearningRateLog, Patience, ProgressLine,
                                   RunWriter, SampleText, TimeLimit, TrainingClock)
    from toolkit.model.assembly import layers_of, set_trainable

    run, settings, builder = session.run, session.settings, session.components.sequences
    train_data, val_data = session.train_data, session.val_data
    history = runs.trim_history(run.file(runs.HISTORY), first_epoch)
    clock = TrainingClock(builder.batch_size * builder.length,
                          run.progress().get("training_seconds", 0.0) if session.resume else 0.0)
    time_limit = TimeLimit(settings.max_minutes, clock)
    head = session.components.head
    guessing = head.guessing_loss(HeadContext(len(session.prepared.vocab), session.labels or []))
    guard = DivergenceGuard(guessing, settings.divergence_steps, settings.on_divergence)
    monitor = monitored(session)
    callbacks = [clock, FollowEpochs(train_data), guard, *builder.callbacks(train_data),
                 LearningRateLog()]
    if head.attributes and val_data is not None:
        callbacks.append(AttributionValidation(head, val_data.passages, builder.batch_size))
    init = session.resolved.init
    unfreeze_at = init["unfreeze_after"] or settings.epochs
    # Epochs with frozen layers do not count against patience: the run changes at unfreezing.
    patience = Patience(monitor, settings.patience, history,
                        counts_from=init["unfreeze_after"] if init["freeze"] else 0)
    callbacks.append(patience)
    if progress_seconds:
        callbacks.append(ProgressLine(progress_seconds, settings.epochs, len(train_data),
                                      builder.batch_size * builder.length))
    log_dir = run.file(runs.LOGS) if settings.tensorboard else None
    if head.generates and settings.sample_length:
        callbacks.append(SampleText(run, session.components,
                                    Preprocessor(session.components.stages),
                                    session.prepared.vocab, session.resolved.generate,
                                    settings.sample_length, log_dir))
    callbacks.append(RunWriter(run, clock, monitor, history, guard))
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), write_graph=False))
    callbacks += [time_limit, EpochLine()]  # last: it shows what the others logged
    if session.strategy is not None:
        from toolkit.training.distribute import avoid_keras_20329

        avoid_keras_20329(model, train_data)
    for start, stop in ((first_epoch, min(unfreeze_at, settings.epochs)),
                        (max(first_epoch, unfreeze_at), settings.epochs)):
        if start >= stop or time_limit.stopped or guard.stopped or patience.reason:
            continue
        if start >= unfreeze_at and not all(layer.trainable
                                            for layer in layers_of(model, init["copy"])):
            set_trainable(model, init["copy"], True)
            with session.scope():
                recompile(model, session.components, session.compile_settings or settings,
                          planned_steps(session), init)
        model.fit(session.dataset(train_data),
                  validation_data=None if val_data is None else session.dataset(val_data),
                  epochs=stop, initial_epoch=start, callbacks=callbacks,
                  shuffle=False, verbose=verbose)
    session.stopped_by = (guard.reason if guard.stopped else patience.reason or
                          ("train.max_minutes" if time_limit.stopped else "train.epochs"))
    return clock, guard


def monitor_choices(head) -> list[str]:
    """The figures ``train.monitor`` may name for ``head``: the losses and the validation
    figures of its metrics (and, for attribution heads, macro-F1 and accuracy)."""
    names = ["loss", "val_loss", *(f"val_{metric.name}" for metric in head.metrics())]
    if head.attributes:
        names += ["val_macro_f1", "val_accuracy"]
    return list(dict.fromkeys(names))


def monitored(session: Session) -> str:
    """The figure that picks the kept epoch: ``train.monitor``, or the head's own default
    (``"loss"`` when there is no validation split)."""
    setting = session.settings.monitor
    if session.val_data is None:
        return "loss"
    return session.components.head.monitor if setting == "auto" else setting


def check_monitor(session: Session) -> None:
    """Refuse a ``train.monitor`` that the run would never log, before any file is written."""
    setting = session.settings.monitor
    if setting == "auto":
        return
    if session.val_data is None:
        if setting != "loss":
            raise ConfigError("train.monitor", f"this run has no validation split, so it "
                                               f"never logs {setting!r}; choose \"auto\" or "
                                               f"\"loss\", or set train.validation_fraction")
        return
    choices = monitor_choices(session.components.head)
    if setting not in choices:
        raise ConfigError("train.monitor", f"this run never logs {setting!r}; choose "
                                           f"\"auto\" or one of {choices}")


def finish_run(session: Session, model, clock) -> None:
    """Phase 6: keep the best (or last) epoch as ``model.keras`` and write ``metrics.json``."""
    from toolkit.model.assembly import layers_of

    run = session.run
    if session.settings.keep == "best" and run.file(runs.BEST).is_file():
        model.load_weights(run.file(runs.BEST))
    runs.atomic_save_model(portable_model(session, model), run.file(runs.MODEL))
    from toolkit.runs.report import save_curves

    save_curves(Run(run.path), run.file(runs.CURVES))
    metrics = summarize(model, session.components.head, session.val_data,
                        session.prepared.stats, run, clock, session)
    metrics["kept"] = kept_epoch(session)
    init = session.resolved.init
    pretrained = session.resolved.pretrain.epochs > 0
    if init.get("run") is not None or pretrained:  # what the run started from
        metrics["init"] = {"run": init.get("run"), "pretrained": pretrained,
                           "copy": list(init["copy"]),
                           "copied_layers": [layer.name for layer in layers_of(model, init["copy"])],
                           "freeze": init["freeze"], "unfreeze_after": init["unfreeze_after"]}
    if pretrained and run.file(runs.PRETRAIN).is_file():
        metrics["pretrain"] = json.loads(run.file(runs.PRETRAIN).read_text())
    if session.components.head.attributes and session.val_data is not None:
        from toolkit.attribution.fitting import fit_run

        # calibration.json and ensemble.pkl: what `toolkit calibrate` fits
        metrics.update(fit_run(Run(run.path), session.prepared))
    runs.write_json(run.file(runs.METRICS), metrics)


def kept_epoch(session: Session) -> dict:
    """Which epoch ``model.keras`` holds, and why: the best by ``train.monitor`` or the
    last one, and what ended training."""
    from toolkit.training.callbacks import best_epoch, maximised

    history = runs.read_history(session.run.file(runs.HISTORY))
    monitor, keep = monitored(session), session.settings.keep
    last = max((int(row["epoch"]) for row in history), default=-1)
    best = best_epoch(history, monitor)
    if keep == "best" and best is not None:
        epoch, value = best
        logged = sum(row.get(monitor) not in (None, "") for row in history)
        why = f"the {'highest' if maximised(monitor) else 'lowest'} {monitor} of {logged} epochs"
    else:
        epoch = last
        value = next((float(r[monitor]) for r in history
                      if int(r["epoch"]) == last and r.get(monitor) not in (None, "")), None)
        why = "the last epoch (train.keep = \"last\")" if keep == "last" else \
              f"the last epoch (no {monitor} was logged)"
    return {"epoch": epoch + 1, "monitor": monitor,
            "value": None if value is None else round(value, 5), "why": why,
            "stopped_by": session.stopped_by}


def planned_steps(session: Session) -> int:
    """Training steps in the whole run (every epoch, even those already trained)."""
    return len(session.train_data) * session.settings.epochs


def steps_done(model) -> int:
    """The optimizer's step count (under ``tf.distribute``, the first replica's copy)."""
    from toolkit.model.state import copies

    return int(np.asarray(copies(model.optimizer.iterations)[0]))


def recompile(model, components, settings: dict, planned: int | None = None,
              init: dict | None = None) -> None:
    """Compile again (after freezing or unfreezing), keeping the optimizer's step count."""
    from toolkit.model.assembly import compile_model

    steps = steps_done(model)
    compile_model(model, components, settings, planned, init)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps)


def portable_model(session: Session, model):
    """The model ``model.keras`` holds: ``model`` itself, or, for a distributed stateful
    run (whose layers take one replica's rows), the same weights in a model for the
    whole batch on one device, so that evaluation and generation need no strategy."""
    if session.strategy is None or not session.components.sequences.stateful:
        return model
    from toolkit.model.assembly import build_model, compile_model

    components = session.components
    whole = build_model(components, len(session.prepared.vocab),
                        components.sequences.batch_size, True, session.labels)
    whole.set_weights(model.get_weights())
    compile_model(whole, components, session.settings)
    return whole


def summarize(model, head, val_data, data_stats: dict, run: Run, clock,
              session: Session | None = None) -> dict:
    """The run's figures: validation figures of the final model, history, throughput."""
    from toolkit.model.state import reset_states

    metrics = {"data": {k: v for k, v in data_stats.items() if k != "cache"},
               "epochs_done": run.progress()["epochs_done"],
               "training_minutes": round(clock.seconds / 60, 3)}
    if clock.rates:
        metrics["train_tokens_per_second_median"] = round(statistics.median(clock.rates), 1)
    if val_data is not None:
        reset_states(model)
        dataset = session.dataset(val_data) if session is not None else val_data.dataset()
        results = model.evaluate(dataset, return_dict=True, verbose=0)
        metrics["validation"] = head.summarize(results)
    return metrics
