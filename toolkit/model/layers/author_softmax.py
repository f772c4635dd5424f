import keras
from keras import ops


@keras.saving.register_keras_serializable(package="toolkit")
class AuthorSoftmax(keras.layers.Layer):
    """One next-token softmax per author on shared features (Bagnall's multi-headed LM).

    Called on ``[features, author]`` with features ``(batch, time, units)`` and author
    indices ``(batch,)``, it applies each row's own author's output layer and returns
    next-token probabilities ``(batch, time, vocab_size)``. ``log_likelihoods`` scores a
    sequence under every author's layer at once.

    Args:
        num_authors: int. Number of authors (heads).
        vocab_size: int. Size of each softmax.
    """

    def __init__(self, num_authors, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.num_authors, self.vocab_size = num_authors, vocab_size
        self.supports_masking = True

    def build(self, input_shape):
        units = input_shape[0][-1]
        self.kernel = self.add_weight(shape=(self.num_authors, units, self.vocab_size),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.num_authors, self.vocab_size),
                                    initializer="zeros", name="bias")

    def call(self, inputs):
        features, author = inputs
        author = ops.cast(ops.reshape(author, (-1,)), "int32")
        kernel = ops.take(self.kernel, author, axis=0)            # (batch, units, vocab)
        bias = ops.take(self.bias, author, axis=0)[:, None, :]    # (batch, 1, vocab)
        logits = ops.einsum("btu,buv->btv", features, kernel) + bias
        return ops.softmax(ops.cast(logits, "float32"), axis=-1)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def log_likelihoods(self, features, targets, weights):
        """Sum over time of ``log p(target)`` under each author: shape ``(batch, authors)``."""
        columns = []
        for a in range(self.num_authors):
            logits = ops.einsum("btu,uv->btv", features, self.kernel[a]) + self.bias[a]
            log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
            picked = ops.take_along_axis(log_probs, targets[:, :, None], axis=-1)[:, :, 0]
            columns.append(ops.sum(picked * weights, axis=1))
        return ops.stack(columns, axis=1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:2], self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "num_authors": self.num_authors,
                "vocab_size": self.vocab_size}
