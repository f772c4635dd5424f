"""Keras layers the toolkit provides (registered as serializable for ``.keras`` files)."""

from toolkit.layers.one_hot_encoding import OneHotEncoding

__all__ = ["OneHotEncoding"]
