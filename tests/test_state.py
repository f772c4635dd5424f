"""The stateful contract during fit: state carried across batches, reset per epoch and for validation."""

import keras
import numpy as np

from toolkit.config.schema import Components
from toolkit.default_plugins.cores import LSTMCore
from toolkit.default_plugins.encoders import EmbeddingEncoder, OneHotEncoder
from toolkit.default_plugins.heads import GeneratorHead
from toolkit.default_plugins.sequences import StreamBuilder
from toolkit.model.assembly import build_model, compile_model
from toolkit.model.state import get_states, reset_states
from toolkit.training.callbacks import FollowEpochs

TRAIN = {"optimizer": "adam", "learning_rate": 0.01, "clipnorm": 1.0}


def tiny_model(builder, encoder=None):
    components = Components(None, [], encoder or EmbeddingEncoder(4), builder, LSTMCore(8),
                            GeneratorHead())
    model = build_model(components, 12, builder.batch_size, stateful=True)
    compile_model(model, components, TRAIN)
    return model


class StateRecorder(keras.callbacks.Callback):
    """Records the recurrent state at each point of fit (runs after the toolkit's callbacks)."""

    def __init__(self):
        super().__init__()
        self.events = []

    def record(self, event):
        self.events.append((event, [s.copy() for s in get_states(self.model)]))

    def on_epoch_begin(self, epoch, logs=None):
        self.record(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.record(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.record(("batch_end", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.record(("epoch_end", epoch))


def is_zero(states):
    return all(not np.any(s) for s in states)


def fit_recorded(epochs=2, validation=True):
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 12, size=400).astype(np.int32)
    builder = StreamBuilder(batch_size=4, length=10)
    model = tiny_model(builder)
    train = builder.training(ids, seed=0)
    val = builder.validation(ids[:120]) if validation else None
    recorder = StateRecorder()
    model.fit(train.dataset(), validation_data=val and val.dataset(), epochs=epochs,
              callbacks=[FollowEpochs(train), *builder.callbacks(train), recorder], verbose=0, shuffle=False)
    return dict(recorder.events), recorder.events


def test_state_is_carried_across_batches_and_zeroed_at_each_epoch_start():
    events, _ = fit_recorded(epochs=2, validation=False)
    for epoch in (0, 1):
        assert is_zero(events[("epoch_begin", epoch)])
    # within an epoch, batch k + 1 starts from the state batch k ended with
    _, ordered = fit_recorded(epochs=1, validation=False)
    ends = {e[1]: s for e, s in ordered if e[0] == "batch_end"}
    begins = {e[1]: s for e, s in ordered if e[0] == "batch_begin"}
    assert is_zero(begins[0])
    for k in range(1, 5):
        assert not is_zero(begins[k])
        for a, b in zip(ends[k - 1], begins[k]):
            np.testing.assert_array_equal(a, b)


def test_validation_leaves_the_training_state_untouched():
    _, ordered = fit_recorded(epochs=1, validation=True)
    last_batch_end = [s for e, s in ordered if e[0] == "batch_end"][-1]
    epoch_end = [s for e, s in ordered if e[0] == "epoch_end"][0]
    assert not is_zero(last_batch_end)
    for a, b in zip(last_batch_end, epoch_end):
        np.testing.assert_array_equal(a, b)


def test_validation_starts_from_a_zero_state():
    rng = np.random.default_rng(1)
    ids = rng.integers(2, 12, size=300).astype(np.int32)
    builder = StreamBuilder(batch_size=4, length=10)
    model = tiny_model(builder)
    val = builder.validation(ids).dataset()
    reset_states(model)
    clean = model.evaluate(val, verbose=0, return_dict=True)["perplexity"]
    model.predict({"tokens": ids[:40].reshape(4, 10), "starts": np.zeros(4)},
                  verbose=0)  # leaves a non-zero state behind
    from toolkit.model.state import StateResets
    after = model.evaluate(val, verbose=0, return_dict=True, callbacks=[StateResets()])
    np.testing.assert_allclose(after["perplexity"], clean, rtol=1e-5)


def test_padding_changes_neither_state_nor_predictions():
    builder = StreamBuilder(batch_size=2, length=6, documents="joined")
    for encoder in (EmbeddingEncoder(4), OneHotEncoder()):
        model = tiny_model(builder, encoder)
        x = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 2]], np.int32)
        reset_states(model)
        padded = model(x)
        state_padded = get_states(model)
        reset_states(model)
        unpadded = model(x[:, :4])
        state_unpadded = get_states(model)
        np.testing.assert_allclose(np.asarray(padded)[:, :4], np.asarray(unpadded), atol=1e-6)
        # row 0's state after its padding equals its state after its last real token
        for a, b in zip(state_padded, state_unpadded):
            np.testing.assert_allclose(a[0], b[0], atol=1e-6)
