import keras
from keras import ops


class TokenIdLayer(keras.layers.Layer):
    """Base for layers that turn token ids into vectors: checks ``vocab_size``, masks id 0.

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

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size})
        return config
