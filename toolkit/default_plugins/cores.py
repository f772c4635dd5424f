"""Built-in cores: stacked LSTM layers."""

from toolkit.hookspecs import hookimpl
from toolkit.params import Fraction, PositiveInt


class LSTMCore:
    """Stacked LSTM layers returning sequences, stateful when the sequence builder needs it.

    ``dropout`` is applied to each layer's outputs; ``recurrent_dropout`` > 0 disables
    the fast cuDNN kernel on GPUs. Leave ``stateful`` unset to follow the sequence builder.
    """

    def __init__(self, units: PositiveInt = 256, layers: PositiveInt = 1,
                 dropout: Fraction = 0.0, recurrent_dropout: Fraction = 0.0,
                 stateful: bool | None = None):
        self.units = units
        self.layers = layers
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.stateful = stateful

    def build(self, stateful: bool) -> list:
        import keras

        layers = []
        for i in range(self.layers):
            layers.append(keras.layers.LSTM(
                self.units, return_sequences=True, stateful=stateful,
                recurrent_dropout=self.recurrent_dropout, name=f"core_lstm_{i}"))
            if self.dropout:
                layers.append(keras.layers.Dropout(self.dropout, name=f"core_dropout_{i}"))
        return layers


@hookimpl
def register_cores(register):
    register("lstm", LSTMCore)
