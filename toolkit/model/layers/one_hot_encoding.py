import keras
from keras import ops

from toolkit.model.layers.token_id_layer import TokenIdLayer


@keras.saving.register_keras_serializable(package="toolkit")
class OneHotEncoding(TokenIdLayer):
    """One-hot vectors for token ids, computed per batch, with a mask hiding id 0.

    Unlike one-hot arrays prepared in NumPy, nothing of size ``tokens x vocab_size``
    is ever held in memory: each batch is expanded inside the model.

    Args:
        vocab_size: int. Number of ids, padding (0) included.
    """

    def call(self, inputs):
        return ops.one_hot(ops.cast(inputs, "int32"), self.vocab_size, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocab_size)
