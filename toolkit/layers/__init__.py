"""Keras layers the toolkit provides (registered as serializable for ``.keras`` files)."""

from toolkit.layers.one_hot_encoding import OneHotEncoding
from toolkit.layers.scaled_id import ScaledId

__all__ = ["OneHotEncoding", "ScaledId"]
