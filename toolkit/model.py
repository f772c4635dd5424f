"""Model assembly: encoder -> core -> head as one ``keras.Model``, and its inference twin."""

from __future__ import annotations

import keras

from toolkit.config import Components
from toolkit.state import reset_states


def build_model(components: Components, vocab_size: int, batch_size: int | None,
                stateful: bool) -> keras.Model:
    """Assemble the model. A stateful model needs a fixed ``batch_size``; time is free."""
    if stateful:
        inputs = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    else:
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
    features = components.encoder.build(vocab_size)(inputs)
    for layer in components.core.build(stateful):
        features = layer(features)
    outputs = components.head.build(features, vocab_size)
    return keras.Model(inputs, outputs, name="text_model")


def make_optimizer(train: dict) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": train["learning_rate"]}
    if train["clipnorm"]:
        kwargs["clipnorm"] = train["clipnorm"]
    return keras.optimizers.get({"class_name": train["optimizer"], "config": kwargs})


def compile_model(model: keras.Model, components: Components, train: dict) -> None:
    # Head metrics are weighted metrics: Keras passes sample weights only to those.
    model.compile(optimizer=make_optimizer(train), loss=components.head.loss(),
                  weighted_metrics=components.head.metrics())


def inference_twin(trained: keras.Model, components: Components, vocab_size: int,
                   batch_size: int) -> keras.Model:
    """A stateful copy of ``trained`` for ``batch_size`` parallel sequences, state zeroed.

    Only weights are copied (recurrent state is not a weight), so the twin works
    for any batch size whatever the batch size it was trained with.
    """
    twin = build_model(components, vocab_size, batch_size, stateful=True)
    twin.set_weights(trained.get_weights())
    reset_states(twin)
    return twin
