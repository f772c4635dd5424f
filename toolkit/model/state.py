"""Recurrent state: find, reset, save and restore the state of a model's stateful layers.

Keras 3 keeps an RNN layer's state in non-trainable ``rnn_state`` variables, has no
``Model.reset_states()`` and never resets state inside ``fit``; this module does it.
"""

from __future__ import annotations

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import numpy as np

from toolkit.errors import ConfigError


def stateful_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every stateful RNN layer of ``model``, nested models and wrappers included."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN) and layer.stateful:
            found.append(layer)
    return found


def reset_states(model: keras.Model) -> None:
    """Zero the state of every stateful RNN layer."""
    for layer in stateful_layers(model):
        layer.reset_state()


def copies(variable) -> list:
    """The variable's copies: one per replica for a state kept per replica
    (:func:`toolkit.training.distribute.keep_state_per_replica`), else the variable itself."""
    return list(getattr(variable.value, "values", None) or [variable])


def get_states(model: keras.Model) -> list[np.ndarray]:
    """A copy of every stateful layer's state variables, in a fixed order (a state kept
    per replica as its replicas' rows one after the other, never averaged)."""
    return [np.concatenate([np.array(c) for c in copies(v)])
            for layer in stateful_layers(model) for v in (layer.states or [])]


def set_states(model: keras.Model, values: list[np.ndarray]) -> None:
    """Put back what :func:`get_states` returned."""
    variables = [v for layer in stateful_layers(model) for v in (layer.states or [])]
    for variable, value in zip(variables, values, strict=True):
        parts = copies(variable)
        for part, rows in zip(parts, np.split(np.asarray(value), len(parts))):
            part.assign(rows)


def check_row_resets(layer, config_file: str | None = None, documents: str = "separate"
                     ) -> None:
    """Refuse a recurrent core layer whose state cannot be zeroed per row (mid-batch for
    ``documents = "separate"``, before the batch for a layer without ``starts=`` under
    ``"aligned"``, which then takes per-step resets at the first step).

    :class:`~toolkit.model.layers.FastLSTM` does it in its own loop; any other RNN through
    :func:`toolkit.model.layers.row_resets.with_row_resets`, except with dropout inside its
    cell (Keras draws those masks outside the time loop) or ``go_backwards``."""
    if not isinstance(layer, keras.layers.RNN) or getattr(layer, "supports_resets", False):
        return
    cell = layer.cell
    dropout = {name: getattr(cell, name, 0) for name in ("dropout", "recurrent_dropout")}
    if not layer.go_backwards and not any(dropout.values()):
        return
    why = ("it reads backwards" if layer.go_backwards else
           "its cell has " + ", ".join(f"{k} = {v}" for k, v in dropout.items() if v))
    where = "mid-batch" if documents == "separate" else "before a batch"
    raise ConfigError("sequences.documents", (
        f"{documents!r} starts a row's state again where a document begins, {where}, and "
        f"core layer {layer.name!r} ({type(layer).__name__}) cannot, because {why}; set "
        f"core.recurrent_dropout = 0 (core.dropout, between layers, is fine), or set "
        f"documents = \"joined\" to read the documents as one text"), config_file)


class StateResets(keras.callbacks.Callback):
    """Keeps the stateful contract during ``fit``, ``evaluate`` and ``predict``.

    The state is zeroed at the start of every epoch and before validation; the
    training state in force when validation starts is restored when it ends, so
    validation and training never see each other's state. It is also zeroed before
    ``predict``.
    """

    def __init__(self):
        super().__init__()
        self._training_state = None

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        self._training_state = get_states(self.model)
        reset_states(self.model)

    def on_test_end(self, logs=None):
        if self._training_state is not None:
            set_states(self.model, self._training_state)
            self._training_state = None

    def on_predict_begin(self, logs=None):
        reset_states(self.model)
