"""Built-in cores: stacked LSTM layers."""

from typing import Literal

from toolkit.hookspecs import Core, hookimpl
from toolkit.config.params import Fraction, PositiveInt


class LSTMCore(Core):
    """Stacked LSTM layers returning sequences, stateful when the sequence builder needs it.

    Each layer is a :class:`~toolkit.model.layers.FastLSTM` (Keras's LSTM with a faster CPU
    training loop; the same weights). ``dropout`` is applied to each layer's outputs:
    with ``dropout_mask = "sequence"`` (variational dropout) a window drops the same
    units at every step, with ``"step"`` a fresh mask is drawn for every step (far
    slower under XLA on a CPU, whose random numbers are slow to draw).
    ``recurrent_dropout`` > 0 disables the fast loops (cuDNN on GPUs, the hoisted loop
    on CPUs). Leave ``stateful`` unset to follow the sequence builder.
    """

    def __init__(self, units: PositiveInt = 256, layers: PositiveInt = 1,
                 dropout: Fraction = 0.0, recurrent_dropout: Fraction = 0.0,
                 dropout_mask: Literal["sequence", "step"] = "sequence",
                 stateful: bool | None = None):
        self.units = units
        self.layers = layers
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.dropout_mask = dropout_mask
        self.stateful = stateful

    def build(self, stateful: bool) -> list:
        import keras

        from toolkit.model.layers import FastLSTM

        layers = []
        for i in range(self.layers):
            layers.append(FastLSTM(
                self.units, return_sequences=True, stateful=stateful,
                recurrent_dropout=self.recurrent_dropout, name=f"core_lstm_{i}"))
            if self.dropout:
                noise_shape = (None, 1, self.units) if self.dropout_mask == "sequence" else None
                layers.append(keras.layers.Dropout(self.dropout, noise_shape=noise_shape,
                                                   name=f"core_dropout_{i}"))
        return layers

    def prefers_xla(self, layers) -> bool:
        """XLA fuses the per-step gate arithmetic of FastLSTM's hoisted loop (on the CPU,
        without recurrent dropout); Keras's own loop and cuDNN do not gain from it."""
        from toolkit.model.layers import FastLSTM

        return any(isinstance(layer, FastLSTM) and layer.uses_fast_loop for layer in layers)


@hookimpl
def register_cores(register):
    register("lstm", LSTMCore)
