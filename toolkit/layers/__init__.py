"""Keras layers the toolkit provides (registered as serializable for ``.keras`` files)."""

from toolkit.backend import load_tensorflow

load_tensorflow()

from toolkit.layers.author_softmax import AuthorSoftmax  # noqa: E402
from toolkit.layers.fast_lstm import FastLSTM
from toolkit.layers.masked_pooling import MaskedPooling
from toolkit.layers.one_hot_encoding import OneHotEncoding
from toolkit.layers.row_resets import ResettingCell
from toolkit.layers.scaled_id import ScaledId

__all__ = ["AuthorSoftmax", "FastLSTM", "MaskedPooling", "OneHotEncoding", "ResettingCell",
           "ScaledId"]
