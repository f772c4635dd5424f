"""A trained generator as a function with explicit state: token ids and every recurrent
state in, next-token log-probabilities and every state out.

The inference twin keeps its state in the stateful layers' variables, for one batch size.
:class:`StepModel` runs the same layers with the state passed in and handed back, for
any batch size: what an exported SavedModel's ``step`` signature computes, and what the
server's batcher carries per row between chunks of sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import tensorflow as tf

from toolkit.data.vocab import PAD
from toolkit.errors import ToolkitError


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor: its name (``core_0_state_1``), the layer it belongs to,
    and its size per row."""

    name: str
    layer: str
    size: int


def stateless_copy(layer: keras.layers.RNN) -> keras.layers.RNN:
    """``layer`` rebuilt to take its initial state as an argument and return its final
    state (not stateful, ``return_state``), with the same weights."""
    config = {**layer.get_config(), "stateful": False, "return_state": True}
    copy = layer.__class__.from_config(config)
    features = keras.tree.flatten(layer.input)[0].shape[-1]
    copy.build((None, None, features))
    copy.set_weights(layer.get_weights())
    return copy


class StepModel:
    """A generator twin's layers with explicit state (see the module docstring).

    ``twin`` is a chain from token ids to next-token probabilities (an inference twin
    or an author twin, :mod:`toolkit.model.assembly`); its stateful recurrent layers are
    copied without state, the others are shared."""

    def __init__(self, twin: keras.Model):
        if len(twin.inputs) != 1:
            raise ToolkitError(f"model {twin.name!r} takes {len(twin.inputs)} inputs; only a "
                               f"twin from token ids to next-token probabilities has a step")
        self.layers = []
        self.states: list[StateSpec] = []
        for layer in twin.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.layers.RNN):
                sizes = layer.cell.state_size
                sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
                self.states += [StateSpec(f"{layer.name}_state_{i}", layer.name, int(size))
                                for i, size in enumerate(sizes)]
                layer = stateless_copy(layer)
            elif (isinstance(layer, keras.layers.TimeDistributed)
                  and isinstance(layer.layer, keras.layers.Dense)):
                # A Dense layer already maps every step alike, and on its own it runs
                # one product for all steps (TimeDistributed maps it over an unknown
                # time axis with vectorized_map, per batch size).
                layer = layer.layer
            self.layers.append(layer)
        self.last_recurrent = max(i for i, layer in enumerate(self.layers)
                                  if isinstance(layer, keras.layers.RNN))
        self.vocab_size = int(twin.outputs[0].shape[-1])

    @property
    def variables(self) -> list:
        return [v for layer in self.layers for v in layer.weights]

    def initial_state(self, batch_size) -> list:
        """Zero states for ``batch_size`` rows (what a fresh twin starts from)."""
        return [tf.zeros([batch_size, spec.size]) for spec in self.states]

    def __call__(self, tokens, states, head: bool = True):
        """``(probabilities (batch, time, vocab), states)`` after feeding ``tokens``
        ``(batch, time)`` from ``states``; with ``head=False`` only the states are
        computed (``None`` in place of the probabilities). A padding id is a step that
        keeps the state, as the encoder's mask makes it in training."""
        mask = tf.not_equal(tokens, PAD)
        x, states, out = tokens, list(states), []
        for i, layer in enumerate(self.layers):
            if i > self.last_recurrent and not head:
                break
            if isinstance(layer, keras.layers.RNN):
                count = state_count(layer)
                x, *new = layer(x, initial_state=states[:count], mask=mask, training=False)
                states = states[count:]
                out += new
            else:
                x = layer(x, training=False)
        return (x if head else None), out

    def one_step(self, tokens, states):
        """``(probabilities (batch, vocab), states)`` after one token per row ``(batch,)``,
        through each recurrent layer's cell: no loop over time, which TensorFlow Lite's
        built-in operations run as they are."""
        x, states, out = tokens[:, None], list(states), []
        for layer in self.layers:
            if isinstance(layer, keras.layers.RNN):
                count = state_count(layer)
                if len(x.shape) == 3:
                    x = x[:, 0]
                x, new = layer.cell(x, states[:count], training=False)
                states = states[count:]
                out += list(new) if isinstance(new, (list, tuple)) else [new]
            else:
                x = layer(x, training=False)
        return x, out


def state_count(layer: keras.layers.RNN) -> int:
    """How many state tensors a recurrent layer carries (an LSTM: 2, h and c)."""
    sizes = layer.cell.state_size
    return len(sizes) if isinstance(sizes, (list, tuple)) else 1
