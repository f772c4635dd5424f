"""Per-row state resets for any Keras recurrent layer (the generic, slower path).

:class:`~toolkit.model.layers.FastLSTM` resets rows in its own loop. Any other
``keras.layers.RNN`` (a plugin's GRU, say) gets them through :func:`with_row_resets`:
its cell is wrapped in :class:`ResettingCell`, which reads one extra input feature,
the reset flag, and zeroes the row's state before the step where it is 1. The cell's
weights are the original cell's, in the same order, so a model without resets (the
inference twin) takes them unchanged.
"""

from __future__ import annotations

import keras
from keras import tree


@keras.saving.register_keras_serializable(package="toolkit")
class ResettingCell(keras.layers.Layer):
    """Wraps a recurrent cell: the last input feature is a per-row flag, 1 meaning "start
    from a zero state here"; the other features go to the wrapped cell."""

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.state_size = cell.state_size
        if hasattr(cell, "output_size"):
            self.output_size = cell.output_size

    def build(self, input_shape):
        if not self.cell.built:  # a cell loaded from a .keras file comes built
            self.cell.build((*input_shape[:-1], input_shape[-1] - 1))

    def call(self, inputs, states, training=False):
        keep = 1 - inputs[:, -1:]
        states = tree.map_structure(lambda state: state * keep, states)
        return self.cell(inputs[:, :-1], states, training=training)

    def get_initial_state(self, batch_size=None):
        return self.cell.get_initial_state(batch_size=batch_size)

    def get_config(self):
        return {**super().get_config(), "cell": keras.saving.serialize_keras_object(self.cell)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="toolkit")
class AppendResetFlag(keras.layers.Layer):
    """``(features, resets)`` -> features with the reset flag as one more feature; the
    output keeps the features' mask (``Concatenate`` would merge it away)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, features, resets):
        flags = keras.ops.cast(resets, features.dtype)[..., None]
        return keras.ops.concatenate([features, flags], axis=-1)

    def compute_output_shape(self, features_shape, resets_shape=None):
        return (*features_shape[:-1], features_shape[-1] + 1)


def with_row_resets(layer: keras.layers.RNN, features, resets):
    """``layer`` applied to ``features`` with per-row ``resets`` ``(batch, time)``: the layer
    itself when it takes ``resets=`` (``supports_resets``), otherwise a
    ``keras.layers.RNN`` of the same name around its cell wrapped in :class:`ResettingCell`.
    """
    if getattr(layer, "supports_resets", False):
        return layer(features, resets=resets)
    flagged = AppendResetFlag(name=f"resets_for_{layer.name}")(features, resets)
    generic = keras.layers.RNN(ResettingCell(layer.cell), return_sequences=layer.return_sequences,
                               stateful=layer.stateful, name=layer.name)
    return generic(flagged)


@keras.saving.register_keras_serializable(package="toolkit")
class StartsAsResets(keras.layers.Layer):
    """``(features, starts)`` -> per-step resets ``(batch, time)``: ``starts`` at the first
    step, 0 after (a row zeroed before the batch, for layers without ``starts=``)."""

    def call(self, features, starts, features_mask=None):
        first = keras.ops.cast(keras.ops.reshape(starts, (-1, 1)), "float32")
        steps = keras.ops.shape(features)[1]
        later = keras.ops.zeros_like(features[:, :, 0], dtype="float32")[:, 1:]
        return keras.ops.concatenate([first, later], axis=1)[:, :steps]

    def compute_mask(self, features, starts, features_mask=None):
        return None  # the flags have no padding of their own

    def compute_output_shape(self, features_shape, starts_shape=None):
        return tuple(features_shape[:2])


def with_row_starts(layer: keras.layers.RNN, features, starts):
    """``layer`` applied to ``features`` with the state of the rows where ``starts``
    ``(batch,)`` is 1 zeroed before the first step: ``starts=`` for a layer that takes
    it (FastLSTM, whose every kernel, cuDNN included, stays open), otherwise per-step
    resets at the first step through :func:`with_row_resets`."""
    if getattr(layer, "supports_starts", False):
        return layer(features, starts=starts)
    resets = StartsAsResets(name=f"starts_for_{layer.name}")(features, starts)
    return with_row_resets(layer, features, resets)
