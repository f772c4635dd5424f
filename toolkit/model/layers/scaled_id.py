import keras
from keras import ops

from toolkit.model.layers.token_id_layer import TokenIdLayer


@keras.saving.register_keras_serializable(package="toolkit")
class ScaledId(TokenIdLayer):
    """Each token id as one number, ``id / vocab_size``, with a mask hiding id 0.

    This is the encoding of the classic "LSTM learns the alphabet" tutorial; it
    imposes an order on tokens that means nothing, which is why embeddings or
    one-hot vectors are the usual choice. Kept to reproduce that tutorial.

    Args:
        vocab_size: int. Number of ids, padding (0) included.
    """

    def call(self, inputs):
        scaled = ops.cast(inputs, self.compute_dtype) / self.vocab_size
        return ops.expand_dims(scaled, -1)

    def compute_output_shape(self, input_shape):
        return (*input_shape, 1)
