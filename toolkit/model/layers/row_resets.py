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
