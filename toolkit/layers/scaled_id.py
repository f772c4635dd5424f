import keras
from keras import ops


@keras.saving.register_keras_serializable(package="toolkit")
class ScaledId(keras.layers.Layer):
    """Each token id as one number, ``id / vocab_size``, with a mask hiding id 0.

    This is the encoding of the classic "LSTM learns the alphabet" tutorial; it
    imposes an order on tokens that means nothing, which is why embeddings or
    one-hot vectors are the usual choice. Kept to reproduce that tutorial.

    Args:
        vocab_size: int. Number of ids, padding (0) included.
    """

    def __init__(self, vocab_size, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(
                "`vocab_size` must be an integer of at least 2. "
                f"Received: vocab_size={vocab_size}")
        self.vocab_size = vocab_size

    def call(self, inputs):
        scaled = ops.cast(inputs, self.compute_dtype) / self.vocab_size
        return ops.expand_dims(scaled, -1)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, 1)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size})
        return config
