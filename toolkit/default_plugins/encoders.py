"""Built-in encoders: a learned embedding and one-hot vectors; both mask padding id 0."""

from toolkit.hookspecs import hookimpl
from toolkit.config.params import PositiveInt


class EmbeddingEncoder:
    """Learned embedding vectors of size ``dim`` (Keras ``Embedding`` with ``mask_zero``)."""

    def __init__(self, dim: PositiveInt = 64):
        self.dim = dim

    def build(self, vocab_size: int):
        import keras

        return keras.layers.Embedding(vocab_size, self.dim, mask_zero=True, name="encoder")


class OneHotEncoder:
    """One-hot vectors of size ``vocab_size``, made per batch inside the model."""

    def build(self, vocab_size: int):
        from toolkit.model.layers import OneHotEncoding

        return OneHotEncoding(vocab_size, name="encoder")


class ScaledIdEncoder:
    """Each id as one number, id / vocab_size: the alphabet tutorial's encoding (for comparison)."""

    def build(self, vocab_size: int):
        from toolkit.model.layers import ScaledId

        return ScaledId(vocab_size, name="encoder")


@hookimpl
def register_encoders(register):
    register("embedding", EmbeddingEncoder)
    register("onehot", OneHotEncoder)
    register("scaled-id", ScaledIdEncoder)
