"""Optimizers whose learning rate differs by layer: ULMFiT's discriminative fine-tuning.

``init.lr_decay`` = D gives the layers copied from another run smaller steps than the
new head: the top copied layer learns at ``train.learning_rate`` / D, each copied layer
below it D times slower again, the encoder slowest (``toolkit.model.assembly.layer_rates``). The
rates are part of the optimizer's config, so a checkpoint resumes with them.
"""

from __future__ import annotations

import keras


class LayerRates:
    """Mixin for a Keras optimizer: a variable's step uses the learning rate times its
    layer's factor in ``layer_rates`` (layer name -> factor; 1 for layers not named)."""

    def __init__(self, *args, layer_rates: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_rates = dict(layer_rates or {})
        self.rate_factors: list[float] = []

    def build(self, variables):
        super().build(variables)
        # A variable's path starts with the name of the model layer that owns it.
        self.rate_factors = [self.layer_rates.get(v.path.split("/")[0], 1.0)
                             for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self.rate_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "layer_rates": self.layer_rates}


@keras.saving.register_keras_serializable("toolkit")
class LayerRateAdam(LayerRates, keras.optimizers.Adam):
    """Adam with a learning rate per layer."""


@keras.saving.register_keras_serializable("toolkit")
class LayerRateAdamW(LayerRates, keras.optimizers.AdamW):
    """AdamW with a learning rate per layer."""


@keras.saving.register_keras_serializable("toolkit")
class LayerRateRMSprop(LayerRates, keras.optimizers.RMSprop):
    """RMSprop with a learning rate per layer."""


@keras.saving.register_keras_serializable("toolkit")
class LayerRateSGD(LayerRates, keras.optimizers.SGD):
    """SGD with a learning rate per layer."""


BY_NAME = {"adam": LayerRateAdam, "adamw": LayerRateAdamW, "rmsprop": LayerRateRMSprop,
           "sgd": LayerRateSGD}
