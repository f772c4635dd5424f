"""Keras layers the toolkit provides (registered as serializable for ``.keras`` files)."""

from toolkit.backend import load_tensorflow

load_tensorflow()

from toolkit.model.layers.author_softmax import AuthorSoftmax  # noqa: E402
from toolkit.model.layers.fast_lstm import FastLSTM
from toolkit.model.layers.masked_pooling import MaskedPooling
from toolkit.model.layers.one_hot_encoding import OneHotEncoding
from toolkit.model.layers.row_resets import ResettingCell
from toolkit.model.layers.scaled_id import ScaledId
from toolkit.model.layers.time_distributed import TimeDistributedDense

__all__ = ["AuthorSoftmax", "FastLSTM", "MaskedPooling", "OneHotEncoding", "ResettingCell",
           "ScaledId", "TimeDistributedDense"]
