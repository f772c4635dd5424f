"""In-corpus pretraining (``[pretrain]``): before an attribution run trains its heads, its
encoder and core learn the corpus's own language as a stateful stream language model
(ULMFiT's second stage, "target-task language model fine-tuning").

The language model reads every training passage and every document the split leaves
out (authors below ``sequences.split.min_documents``), never a validation or test
token. It is the run's own encoder and core with a generator head, so the run's model
copies ``init.copy`` from it exactly as it would from another run (``init.run``); with
``init.run`` set, the language model itself starts from that run's weights.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from toolkit.config import schema as config_module
from toolkit.errors import ConfigError, ToolkitError, TrainingDiverged
from toolkit.hookspecs import HeadContext
from toolkit.plugins import registry
from toolkit.splits import Split


@dataclass
class Pretrained:
    """The pretrained language model, the head component that built its head, and what
    its training gave (``pretrain.json``)."""

    model: Any
    figures: dict
    head: Any = None


def pretraining_text(splits: dict[str, Split]) -> Split:
    """The text the language model reads: the training segments, then the left-out documents."""
    parts = [splits["train"], splits.get("left_out", Split())]
    return Split(ids=[ids for part in parts for ids in part.ids],
                 labels=[label for part in parts for label in part.labels],
                 places=[place for part in parts for place in part.places])


def language_model_config(resolved: dict, components) -> dict:
    """The run's config as the pretraining language model's: the same corpus,
    preprocessing, vocabulary, encoder and core; streams of ``[pretrain]``'s batches, the
    language-model head the run's head names (:attr:`Head.language_model`),
    ``[pretrain]``'s epochs, time and learning rate."""
    pretrain = resolved.pretrain
    config = resolved.to_dict()  # a new config, resolved again below
    # Documents aligned to windows: rows restart between batches, which any core can.
    config["sequences"] = {"use": "stream", "batch_size": pretrain["batch_size"],
                           "length": pretrain["length"], "documents": "aligned"}
    config["head"] = dict(components.head.language_model)
    config["core"].pop("stateful", None)  # streams need a stateful core
    config["init"] = {key: value for key, value in config["init"].items()
                      if key in ("run", "copy")}
    config["pretrain"] = {}
    train = config["train"]
    train.update(epochs=pretrain["epochs"], max_minutes=pretrain["max_minutes"],
                 learning_rate=pretrain.get("learning_rate") or train["learning_rate"],
                 monitor="auto", patience=0)
    return config_module.resolve(config, registry())


def check_pretraining(resolved: dict, components, config_file: str) -> None:
    """Refuse ``[pretrain]`` and ``init.copy = "head"`` where they cannot apply, before
    any data is read."""
    head = components.head
    if "head" in resolved.init.copy and not head.target.startswith("next-token"):
        raise ConfigError("init.copy", f"\"head\" starts a next-token head (generator or "
                                       f"author-lms) from a language model's, but head.use = "
                                       f"{resolved.head.use!r} is not one; remove "
                                       f"\"head\"", config_file)
    if not resolved.pretrain.epochs:
        return
    if not head.attributes:
        raise ConfigError("pretrain.epochs", f"pretrains the core for an attribution head, but "
                                             f"head.use = {resolved.head.use!r} already is "
                                             f"a language model; remove [pretrain]", config_file)
    if resolved.train.distribute != "none":
        raise ConfigError("pretrain.epochs", "pretraining runs on one device; set "
                                             "train.distribute = \"none\"", config_file)
    config_module.build_components(language_model_config(resolved, components), registry(),
                                   config_file)


def pretrain(resolved: dict, components, prepared, init_run=None, verbose: Any = "auto",
             progress_seconds: float = 0.0) -> Pretrained:
    """Train the pretraining language model of ``resolved`` on ``prepared``'s training
    text (and left-out documents); its validation loss is read on the validation split
    when that is long enough for the streams. Raises
    :class:`~toolkit.errors.TrainingDiverged` if it diverges."""
    from toolkit.model.assembly import (  # loads TF quietly
        build_model, compile_model, copy_weights, settle_xla)

    import keras

    from toolkit.training.callbacks import (DivergenceGuard, EpochLine, FollowEpochs, ProgressLine,
                                   TimeLimit, TrainingClock)

    lm_config = language_model_config(resolved, components)
    components = config_module.build_components(lm_config, registry())
    builder, settings = components.sequences, lm_config.train
    text = pretraining_text(prepared.splits)
    try:
        train_data = builder.training(builder.data(text, training=True), settings.seed)
    except ToolkitError as err:  # its wording names [sequences]; [pretrain] sets these
        raise ConfigError("pretrain", f"the pretraining text is too short for its streams "
                                      f"({err}); lower pretrain.batch_size or "
                                      f"pretrain.length") from None
    val_data = None
    if len(prepared.splits["validation"]):
        try:
            val_data = builder.validation(builder.data(prepared.splits["validation"]))
        except ToolkitError:  # too short for the streams: train without a validation figure
            val_data = None
    vocab_size = len(prepared.vocab)
    keras.utils.set_random_seed(settings.seed)
    model = build_model(components, vocab_size, builder.batch_size, stateful=True)
    if init_run is not None:
        donor = init_run.model
        has_head = init_run.head.next_token_softmax(donor) is not None
        parts = [part for part in lm_config.init.copy if part != "head" or has_head]
        try:
            copy_weights(donor, model, parts, where=f"init.run = {lm_config.init.run!r}",
                         heads=(init_run.head, components.head))
        except ToolkitError as err:
            raise ConfigError("init.run", str(err)) from None
    steps = len(train_data) * settings.epochs
    compile_model(model, components, settle_xla(model, components, settings, train_data, steps),
                  steps)
    left_out = len(prepared.splits.get("left_out", ()))
    if verbose != 0:
        print(f"pretraining the encoder and core on {text.num_tokens:,} tokens (the training "
              f"passages and {left_out} left-out document(s)) for up to "
              f"{settings.epochs} epoch(s)", file=sys.stderr)
    clock = TrainingClock(builder.batch_size * builder.length)
    time_limit = TimeLimit(settings.max_minutes, clock)
    guessing = components.head.guessing_loss(HeadContext(vocab_size))
    guard = DivergenceGuard(guessing, settings.divergence_steps, "stop")
    callbacks = [clock, FollowEpochs(train_data), guard, *builder.callbacks(train_data),
                 time_limit]
    if progress_seconds:
        callbacks.append(ProgressLine(progress_seconds, settings.epochs, len(train_data),
                                      builder.batch_size * builder.length))
    callbacks.append(EpochLine())
    history = model.fit(train_data.dataset(),
                        validation_data=None if val_data is None else val_data.dataset(),
                        epochs=settings.epochs, callbacks=callbacks, shuffle=False,
                        verbose=verbose)
    if guard.stopped:
        raise TrainingDiverged(f"pretraining diverged: {guard.reason}; lower "
                               f"pretrain.learning_rate (now {settings.learning_rate})")
    logged = history.history
    figures = {"epochs": len(logged.get("loss", [])),
               "minutes": round(clock.seconds / 60, 3),
               "tokens": text.num_tokens, "left_out_documents": left_out,
               "loss": round(logged["loss"][-1], 5)}
    if "val_loss" in logged:
        figures["validation_loss"] = round(logged["val_loss"][-1], 5)
    return Pretrained(model, figures, components.head)
