"""FastLSTM computes what keras.layers.LSTM computes: outputs, carried state and gradients."""

import numpy as np
import pytest

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import tensorflow as tf

from toolkit.model.layers import FastLSTM
from toolkit.model.state import reset_states

VOCAB, BATCH, STEPS = 11, 4, 9


def model(layer_class, stateful, units=8, **kwargs):
    tokens = keras.Input(batch_shape=(BATCH, None), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 5, mask_zero=True, name="encoder")(tokens)
    x = layer_class(units, return_sequences=True, stateful=stateful, name="core_lstm_0",
                    **kwargs)(x)
    out = keras.layers.TimeDistributed(keras.layers.Dense(VOCAB, activation="softmax"))(x)
    return keras.Model(tokens, out)


def pair(stateful, **kwargs):
    reference = model(keras.layers.LSTM, stateful, **kwargs)
    fast = model(FastLSTM, stateful, **kwargs)
    fast.set_weights(reference.get_weights())
    return reference, fast


def batch(rng, holes=True):
    x = rng.integers(1, VOCAB, (BATCH, STEPS)).astype("int32")
    if holes:
        x[1, 6:] = 0   # right padding
        x[2, :] = 0    # a row with no tokens at all
        x[3, 3] = 0    # a hole in the middle
    return x


def gradients(m, x, y):
    with tf.GradientTape() as tape:
        p = m(x, training=True)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, p) * (x != 0))
    return [np.asarray(tf.convert_to_tensor(g)) for g in tape.gradient(loss, m.trainable_variables)]


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("holes", [False, True])
def test_outputs_state_and_gradients_equal_keras_lstm(stateful, holes):
    rng = np.random.default_rng(0)
    reference, fast = pair(stateful)
    assert fast.get_layer("core_lstm_0").uses_fast_loop
    # Two batches in a row: the second starts from the state the first left behind.
    for _ in range(2):
        x, y = batch(rng, holes), rng.integers(1, VOCAB, (BATCH, STEPS))
        np.testing.assert_allclose(fast(x), reference(x), atol=1e-6)
        for ours, theirs in zip(gradients(fast, x, y), gradients(reference, x, y)):
            np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=1e-4)
    if stateful:
        for ours, theirs in zip(fast.get_layer("core_lstm_0").states,
                                reference.get_layer("core_lstm_0").states):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-6)


def test_training_under_xla_matches_keras_lstm_without_it():
    rng = np.random.default_rng(1)
    reference, fast = pair(stateful=True)
    for m, jit in ((reference, False), (fast, True)):
        m.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    assert fast.jit_compile
    data = [(batch(rng), rng.integers(1, VOCAB, (BATCH, STEPS))) for _ in range(3)]
    losses = {}
    for name, m in (("reference", reference), ("fast", fast)):
        reset_states(m)
        losses[name] = [float(m.train_on_batch(x, y)) for x, y in data]
    np.testing.assert_allclose(losses["fast"], losses["reference"], rtol=1e-5)
    for ours, theirs in zip(fast.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_saved_and_loaded_like_keras_lstm(tmp_path):
    _, fast = pair(stateful=False)
    fast.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("core_lstm_0")
    assert isinstance(layer, FastLSTM)
    x = batch(np.random.default_rng(2))
    np.testing.assert_allclose(loaded(x), fast(x), atol=1e-7)


def test_dropout_falls_back_to_the_keras_loop():
    layer = FastLSTM(4, recurrent_dropout=0.1)
    assert not layer.uses_fast_loop


def test_keras_still_calls_the_inner_loop_fast_lstm_overrides():
    from toolkit.model.layers.fast_lstm import keras_contract_problems

    problems = keras_contract_problems()
    assert not problems, "; ".join(problems)
