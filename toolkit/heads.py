"""What a head is: the output layers on top of the core, with their loss and metrics."""

from __future__ import annotations

import keras


class Head:
    """Base for heads. ``build`` maps the core's output sequence to the model's outputs."""

    def build(self, features, vocab_size: int):
        raise NotImplementedError

    def loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def metrics(self) -> list:
        """Metrics compiled as ``weighted_metrics``: they receive the sample weights."""
        return []
