"""The stream layout: contiguous rows, shifted targets, offsets, the ragged end."""

import numpy as np
import pytest

from toolkit.default_plugins.sequences import StreamBuilder, WindowBuilder, stream_layout
from toolkit.errors import ToolkitError


def rows(a):
    """Concatenate each row over batches: shape (batches, B, T) -> (B, batches * T)."""
    return np.concatenate(list(a), axis=1)


@pytest.mark.parametrize("n,batch,length,offset", [(1001, 4, 10, 0), (1001, 4, 10, 7),
                                                   (97, 3, 5, 2), (50, 7, 4, 0)])
def test_rows_are_contiguous_streams_with_shifted_targets(n, batch, length, offset):
    ids = np.arange(1, n + 1, dtype=np.int32)  # no id 0: 0 is padding
    x, y, w, _ = stream_layout(ids, batch, length, offset)
    assert x.shape == y.shape == w.shape and x.shape[1:] == (batch, length)
    x, y, w = rows(x), rows(y), rows(w)
    for i in range(batch):
        real = w[i] > 0
        # weighted positions form a prefix: padding only at the end of a stream
        assert not np.any(real[np.argmin(real):]) or real.all()
        xi, yi = x[i][real], y[i][real]
        if len(xi):
            assert np.all(np.diff(xi) == 1), "row i of batch k+1 continues row i of batch k"
            assert np.all(yi == xi + 1), "targets are the inputs shifted by one token"
        assert np.all(x[i][~real] == 0) and np.all(y[i][~real] == 0)
    # streams follow each other: together they cover ids[offset:] exactly once
    covered = np.sort(x[w > 0])
    np.testing.assert_array_equal(covered, ids[offset:-1])


def test_number_of_batches_does_not_depend_on_offset():
    ids = np.arange(1, 2001, dtype=np.int32)
    counts = {stream_layout(ids, 8, 25, offset)[0].shape[0] for offset in range(25)}
    assert len(counts) == 1


def test_random_offsets_change_each_epoch_and_repeat_with_the_seed():
    builder = StreamBuilder(batch_size=4, length=10)
    offsets = builder.offsets(seed=1)
    epochs = [offsets(e) for e in range(20)]
    assert all(0 <= o < 10 for o in epochs)
    assert len(set(epochs)) > 3
    assert epochs == [builder.offsets(seed=1)(e) for e in range(20)]
    assert epochs != [builder.offsets(seed=2)(e) for e in range(20)]
    assert {StreamBuilder(4, 10, offset="none").offsets(1)(e) for e in range(20)} == {0}


def test_training_data_follows_the_epoch_it_is_given():
    ids = np.arange(1, 500, dtype=np.int32)
    data = StreamBuilder(batch_size=4, length=10).training(ids, seed=3)
    first = data[0][0]["tokens"].copy()
    offsets = StreamBuilder(4, 10).offsets(3)
    epoch = next(e for e in range(1, 50) if offsets(e) != offsets(0))
    data.set_epoch(epoch)
    assert data.offset == offsets(epoch)
    # aligned documents: the text still begins the first window, which now holds only
    # length - offset pairs, so every later window edge moves by the offset
    inputs, _, weights = data[0]
    assert inputs["tokens"][0, 0] == ids[0] and weights[0].sum() == 10 - data.offset
    assert data[1][0]["tokens"][0, 0] == ids[10 - data.offset]
    assert not np.array_equal(first, inputs["tokens"])
    joined = StreamBuilder(4, 10, documents="joined").training(ids, seed=3)
    joined.set_epoch(epoch)
    assert joined[0][0][0, 0] == ids[joined.offset]  # joined: the offset skips the first tokens


def test_a_split_too_small_for_the_streams_is_refused():
    with pytest.raises(ToolkitError, match="batch_size"):
        StreamBuilder(batch_size=64, length=10).validation(np.arange(1, 30, dtype=np.int32))


def test_windows_are_shuffled_overlapping_next_token_pairs():
    ids = np.arange(1, 301, dtype=np.int32)
    data = WindowBuilder(batch_size=8, length=10, step=3).training(ids, seed=0)
    x, y, w = data[0]
    assert x.shape == (8, 10)
    np.testing.assert_array_equal(y, x + 1)
    assert np.all(np.diff(x, axis=1) == 1)
    assert not np.all(np.diff(x[:, 0]) == 3), "windows are shuffled"
    vx, vy, vw = WindowBuilder(8, 10, 3).validation(ids)[0]
    # the warm-up weighs 0; scored positions weigh length / scored, so that Keras's loss
    # (divided by all real positions) is the mean over scored tokens
    assert np.all(vw[:, :5] == 0) and np.all(vw[:, 5:] == 2)
    assert vx[1, 0] - vx[0, 0] == 5, "validation windows overlap by half"


def test_zero_weights_leave_the_validation_metric_untouched():
    """The windows' unscored first halves must not count in the perplexity metric."""
    from tests.test_state import TRAIN
    from toolkit.config.schema import Components
    from toolkit.default_plugins.cores import LSTMCore
    from toolkit.default_plugins.encoders import EmbeddingEncoder
    from toolkit.default_plugins.heads import GeneratorHead
    from toolkit.model.assembly import build_model, compile_model

    rng = np.random.default_rng(0)
    ids = rng.integers(2, 12, size=400).astype(np.int32)
    builder = WindowBuilder(batch_size=8, length=10, step=3)
    components = Components(None, [], EmbeddingEncoder(4), builder, LSTMCore(8),
                            GeneratorHead())
    model = build_model(components, 12, None, stateful=False)
    compile_model(model, components, TRAIN)
    data = builder.validation(ids)
    x = np.concatenate([data[k][0] for k in range(len(data))])
    y = np.concatenate([data[k][1] for k in range(len(data))])
    probabilities = np.asarray(model(x))[:, 5:]
    picked = np.take_along_axis(probabilities, y[:, 5:, None], axis=-1)
    expected = float(np.exp(-np.mean(np.log(picked))))
    got = model.evaluate(data.dataset(), verbose=0, return_dict=True)["perplexity"]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
