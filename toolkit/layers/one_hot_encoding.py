import keras
from keras import ops


@keras.saving.register_keras_serializable(package="toolkit")
class OneHotEncoding(keras.layers.Layer):
    """One-hot vectors for token ids, computed per batch, with a mask hiding id 0.

    Unlike one-hot arrays prepared in NumPy, nothing of size ``tokens x vocab_size``
    is ever held in memory: each batch is expanded inside the model.

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
        return ops.one_hot(ops.cast(inputs, "int32"), self.vocab_size, dtype=self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocab_size)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size})
        return config
