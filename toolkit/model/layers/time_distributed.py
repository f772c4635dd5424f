"""``TimeDistributedDense``: Keras's ``TimeDistributed`` around a ``Dense`` layer, in one product.

Keras 3's ``TimeDistributed`` calls its layer once per step: a Python loop of ``time``
products when the time axis is static (every training batch), ``vectorized_map``
otherwise. A ``Dense`` layer already treats every position alike, so this subclass
calls it once on all ``batch * time`` positions: the same weights, outputs, mask and
config, about 30 % faster training at 256 units on a CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="toolkit")
class TimeDistributedDense(keras.layers.TimeDistributed):
    """``keras.layers.TimeDistributed(Dense)`` applied as one product over every step."""

    def call(self, inputs, training=None, mask=None):
        if not isinstance(self.layer, keras.layers.Dense):
            return super().call(inputs, training=training, mask=mask)
        return self.layer(inputs)  # Dense maps the last axis of any rank
