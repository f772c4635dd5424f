"""Document-aware streams: no pair spans two documents, and a row's state starts from zero
exactly where its next document starts, inside the stateful batch."""

import json

import numpy as np
import pytest

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.conftest import write_tiny_config  # noqa: E402
from toolkit.cli import main  # noqa: E402
from toolkit.default_plugins.sequences import StreamBuilder, stream_layout  # noqa: E402
from toolkit.model.layers import FastLSTM  # noqa: E402
from toolkit.model.layers.row_resets import with_row_resets, with_row_starts  # noqa: E402
from toolkit.errors import ToolkitError  # noqa: E402
from toolkit.splits import Split  # noqa: E402
from toolkit.model.state import reset_states  # noqa: E402


def position_coded(lengths):
    """Documents whose ids say where they come from: id = 10000 * (document + 1) + position."""
    return Split([np.arange(n, dtype=np.int64) + 10000 * (d + 1) for d, n in enumerate(lengths)],
                 [None] * len(lengths), [f"doc{d}" for d in range(len(lengths))])


def by_row(a):
    """(batches, rows, length) -> (rows, batches * length): each row read across batches."""
    return np.concatenate(list(a), axis=1)


@pytest.mark.parametrize("lengths,batch,length,offset", [
    ([1100, 700, 900], 5, 20, 0), ([1100, 700, 900], 5, 20, 13), ([30, 1, 45, 2, 60], 3, 7, 4),
    ([400], 4, 10, 3)])
def test_no_pair_spans_two_documents_and_every_other_pair_is_fed_once(lengths, batch, length,
                                                                      offset):
    split = position_coded(lengths)
    stream = StreamBuilder(batch, length).data(split)
    x, y, w, resets = (by_row(a) for a in stream_layout(stream, batch, length, offset))
    fed = w > 0
    assert np.all(x[fed] // 10000 == y[fed] // 10000), "a trained pair crosses documents"
    assert np.all(y[fed] == x[fed] + 1)
    # every pair inside a document, past the offset, is fed exactly once
    usable = split.concatenated()[offset:]
    inside = usable[1:][usable[1:] // 10000 == usable[:-1] // 10000]
    np.testing.assert_array_equal(np.sort(y[fed]), np.sort(inside))
    # resets: exactly where a row reads the first token of a document after the first
    real = x != 0
    starts = real & (x % 10000 == 0) & (x // 10000 > 1)
    np.testing.assert_array_equal(resets > 0, starts)
    # rows still continue their stream from batch to batch: positions rise by one
    for row_x, row_real in zip(x, real):
        ids = row_x[row_real]
        step = np.diff(ids)
        assert np.all((step == 1) | (ids[1:] % 10000 == 0))


@pytest.mark.parametrize("lengths,batch,length,offset", [
    ([1100, 700, 900], 5, 20, 0), ([1100, 700, 900], 5, 20, 13), ([30, 1, 45, 2, 60], 3, 7, 4),
    ([400], 4, 10, 3), ([21, 21, 21], 2, 20, 7), ([21, 41, 3], 2, 20, 19)])
def test_aligned_documents_begin_at_window_starts_and_rows_reset_only_between_batches(
        lengths, batch, length, offset):
    split = position_coded(lengths)
    stream = StreamBuilder(batch, length, documents="aligned").data(split)
    x, y, w, starts = stream_layout(stream, batch, length, offset, "aligned")
    assert starts.shape == x.shape[:2]
    fed = w > 0
    assert np.all(x[fed] // 10000 == y[fed] // 10000), "a trained pair crosses documents"
    assert np.all(y[fed] == x[fed] + 1)
    # every pair of every document is fed exactly once, whatever the offset
    expected = [10000 * (d + 1) + np.arange(1, n) for d, n in enumerate(lengths)]
    np.testing.assert_array_equal(np.sort(y[fed]), np.sort(np.concatenate(expected)))
    # no window holds two documents; a document's first window is flagged and begins it
    for k in range(x.shape[0]):
        for row in range(batch):
            documents = set(x[k, row][fed[k, row]] // 10000)
            assert len(documents) <= 1
            first = x[k, row, 0]
            if starts[k, row]:  # the document's first token, and the offset moves the edge
                assert fed[k, row, 0] and first % 10000 == 0
                assert fed[k, row].sum() == min(length - offset % length,
                                                lengths[first // 10000 - 1] - 1)
            # padding only at a window's end (cuDNN takes right-padded masks), never a
            # window of padding alone (cuDNN refuses a wholly masked row)
            real = x[k, row] != 0
            assert real[0] and np.all(np.diff(real.astype(int)) <= 0)
    # rows continue from batch to batch: the next window of a row goes on with the same
    # document unless that window is flagged as a start
    x_rows, w_rows = by_row(x), by_row(w)
    for row in range(batch):
        ids = x_rows[row][w_rows[row] > 0]
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        assert np.all(ids[breaks] // 10000 != ids[breaks - 1] // 10000)
    # a window after a document's first continues it: padding at a window's end is masked,
    # so the state carries over it
    for k in range(1, x.shape[0]):
        for row in range(batch):
            same = x[k - 1, row, 0] // 10000 == x[k, row, 0] // 10000
            if fed[k, row, 0] and not starts[k, row] and same:
                assert x[k, row, 0] == x[k - 1, row][fed[k - 1, row]][-1] + 1
    assert starts[0, 0] == 1 and starts.sum() == sum(n > 1 for n in lengths)
    # the number of batches does not depend on the offset
    assert x.shape[0] == stream_layout(stream, batch, length, 0, "aligned")[0].shape[0]


def test_aligning_documents_much_shorter_than_a_window_suggests_separate(capsys):
    builder = StreamBuilder(4, 20, documents="aligned")
    builder.training(builder.data(position_coded([12] * 40)), seed=1)
    assert 'documents = "separate"' in capsys.readouterr().err
    builder.training(builder.data(position_coded([400, 300])), seed=1)
    assert capsys.readouterr().err == ""


def test_aligned_streams_with_nothing_to_train_are_refused():
    builder = StreamBuilder(2, 3, documents="aligned", offset="none")
    with pytest.raises(ToolkitError, match="no document of two tokens"):
        builder.training(builder.data(position_coded([1] * 12)), seed=1)


def test_joined_documents_read_as_one_text_without_resets():
    split = position_coded([300, 200])
    stream = StreamBuilder(4, 10, documents="joined").data(split)
    x, y, w, resets = stream_layout(stream, 4, 10)
    assert not resets.any()
    assert np.any((x // 10000 != y // 10000) & (w > 0)), "joined streams read across the seam"


def lstm_reference(layer, x, h, c, keep, mask):
    """Keras's own LSTM cell stepped in Python, the state multiplied by ``keep`` before each
    step and carried unchanged over masked steps: what per-row resets mean."""
    outputs = []
    for t in range(x.shape[1]):
        h, c = h * keep[:, t:t + 1], c * keep[:, t:t + 1]
        out, (h_new, c_new) = layer.cell(x[:, t], [h, c])
        m = mask[:, t:t + 1]
        h, c = m * h_new + (1 - m) * h, m * c_new + (1 - m) * c
        outputs.append(h)
    return tf.stack(outputs, 1), h, c


@pytest.mark.parametrize("jit", [False, True])
def test_resets_zero_exactly_the_rows_and_steps_given_with_exact_gradients(jit):
    rng = np.random.default_rng(0)
    batch, steps, dim = 4, 9, 5
    layer = FastLSTM(6, return_sequences=True, return_state=True)
    x = tf.constant(rng.normal(size=(batch, steps, dim)), tf.float32)
    h0 = tf.constant(rng.normal(size=(batch, 6)), tf.float32)
    c0 = tf.constant(rng.normal(size=(batch, 6)), tf.float32)
    resets = np.zeros((batch, steps), np.float32)
    resets[0, 4] = resets[1, 0] = resets[3, 2] = resets[3, 7] = 1  # row 2: none
    mask = np.ones((batch, steps), bool)
    mask[3, 7:] = False  # a reset on a padded step
    layer(x, initial_state=[h0, c0])  # build

    def ours(x, h0, c0):
        return layer(x, initial_state=[h0, c0], mask=tf.constant(mask),
                     resets=tf.constant(resets))

    def theirs(x, h0, c0):
        return lstm_reference(layer, x, h0, c0, 1 - resets, mask.astype(np.float32))

    fast = tf.function(ours, jit_compile=True) if jit else ours
    results = []
    for run in (fast, theirs):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            outputs, h, c = run(x, h0, c0)
            loss = tf.reduce_sum(outputs * np.arange(1, 7)) + tf.reduce_sum(h) - tf.reduce_sum(c)
        grads = tape.gradient(loss, [x, h0, c0, *layer.trainable_variables])
        results.append([np.asarray(v) for v in (outputs, h, c, *grads)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    d_h0 = results[0][4]
    assert not d_h0[1].any(), "a reset at step 0: the initial state has no influence"
    assert d_h0[2].any()


CORES = {"FastLSTM": lambda: FastLSTM(8, return_sequences=True, stateful=True, name="core_0"),
         "GRU (generic path)": lambda: keras.layers.GRU(8, return_sequences=True, stateful=True,
                                                        name="core_0")}


@pytest.mark.parametrize("core", CORES)
def test_a_stateful_row_starts_a_document_afresh_mid_batch_whatever_came_before(core, tmp_path):
    rng = np.random.default_rng(2)
    tokens = keras.Input(batch_shape=(3, None), dtype="int32", name="tokens")
    resets = keras.Input(batch_shape=(3, None), dtype="float32", name="resets")
    features = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    features = with_row_resets(CORES[core](), features, resets)
    model = keras.Model({"tokens": tokens, "resets": resets}, features)
    model.save(tmp_path / "model.keras")  # the round trip keeps the resets
    model = keras.saving.load_model(tmp_path / "model.keras")
    document = rng.integers(1, 20, 6)
    x = np.zeros((3, 10), np.int32)
    r = np.zeros((3, 10), np.float32)
    x[0] = [*rng.integers(1, 20, 4), *document]       # another document first
    x[1] = [*rng.integers(1, 20, 4), *document]       # a different one
    x[2, 4:] = document                               # nothing before: a zero state
    r[:2, 4] = 1
    reset_states(model)
    model({"tokens": rng.integers(1, 20, (3, 10)).astype("int32"), "resets": r * 0})  # history
    out = np.asarray(model({"tokens": x, "resets": r}))
    np.testing.assert_allclose(out[0, 4:], out[1, 4:], atol=1e-6)
    reset_states(model)
    fresh = np.asarray(model({"tokens": np.tile(document, (3, 1)).astype("int32"),
                              "resets": np.zeros((3, 6), np.float32)}))
    np.testing.assert_allclose(out[0, 4:], fresh[0], atol=1e-6)
    assert not np.allclose(out[0, :4], out[1, :4])
    # a twin without resets (what generation builds) takes the weights as they are
    plain_tokens = keras.Input(batch_shape=(3, None), dtype="int32", name="tokens")
    plain = keras.layers.Embedding(20, 4, mask_zero=True)(plain_tokens)
    twin = keras.Model(plain_tokens, CORES[core]()(plain))
    twin.set_weights(model.get_weights())
    reset_states(model)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(model({"tokens": x,
                                                                      "resets": r * 0})),
                               atol=1e-6)


@pytest.mark.parametrize("core", CORES)
def test_a_row_flagged_as_a_start_begins_its_batch_from_a_zero_state(core, tmp_path):
    rng = np.random.default_rng(3)
    tokens = keras.Input(batch_shape=(3, None), dtype="int32", name="tokens")
    starts = keras.Input(batch_shape=(3,), dtype="float32", name="starts")
    features = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    features = with_row_starts(CORES[core](), features, starts)
    model = keras.Model({"tokens": tokens, "starts": starts}, features)
    model.save(tmp_path / "model.keras")
    model = keras.saving.load_model(tmp_path / "model.keras")
    document = np.tile(rng.integers(1, 20, 6), (3, 1)).astype("int32")
    reset_states(model)
    model({"tokens": rng.integers(1, 20, (3, 10)).astype("int32"), "starts": np.zeros(3)})
    out = np.asarray(model({"tokens": document, "starts": np.array([1, 0, 1], np.float32)}))
    reset_states(model)
    fresh = np.asarray(model({"tokens": document, "starts": np.zeros(3, np.float32)}))
    np.testing.assert_allclose(out[[0, 2]], fresh[[0, 2]], atol=1e-6)
    assert not np.allclose(out[1], fresh[1]), "a row not flagged keeps its state"


@pytest.fixture(scope="module", params=["aligned", "separate"])
def shelf_run(tmp_path_factory, request):
    """A tiny stream run on three short books read as one shelf, trained for two epochs,
    with each layout that keeps documents apart."""
    folder = tmp_path_factory.mktemp(f"shelf-{request.param}")
    books = folder / "books"
    books.mkdir()
    for name, text in (("a.txt", "abcdefgh " * 40), ("b.txt", "zyxwvuts " * 30),
                       ("c.txt", "the cat sat on the mat. " * 12)):
        (books / name).write_text(text, encoding="utf-8")
    config = write_tiny_config(folder, "epochs = 2")  # the tiny config, on the shelf
    hamlet = folder / "hamlet.txt"
    config.write_text(config.read_text().replace(
        f'use = "text"\npath = "{hamlet}"', f'use = "directory"\npath = "{books}"').replace(
        "length = 16", f"length = 16\ndocuments = \"{request.param}\""))
    assert "directory" in config.read_text() and request.param in config.read_text()
    run = folder / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    return run


def test_a_trained_shelf_scores_a_document_start_the_same_whatever_preceded_it(shelf_run):
    from toolkit.runs.rundir import Run

    run = Run(shelf_run)
    model = run.model
    aligned = "starts" in model.input
    assert set(model.input) == {"tokens", "starts" if aligned else "resets"}
    vocab = run.vocab
    book = vocab.encode(list("the cat sat on"))
    batch = model.input["tokens"].shape[0]
    history = np.zeros((batch, 10), np.int32)
    for row in range(batch):
        history[row] = vocab.encode(list((("abcdefgh " if row % 2 else "zyxwvuts ") * 2)[:10]))
    reset_states(model)
    if aligned:  # the book begins the next batch; every row is flagged
        model.predict_on_batch({"tokens": history, "starts": np.zeros(batch, np.float32)})
        x = np.tile(np.asarray(book, np.int32), (batch, 1))
        scores = np.asarray(model.predict_on_batch({"tokens": x,
                                                    "starts": np.ones(batch, np.float32)}))
        begin = 0
    else:  # the book begins mid-batch, after each row's own history
        x = np.zeros((batch, 24), np.int32)
        r = np.zeros((batch, 24), np.float32)
        x[:, :10], x[:, 10:10 + len(book)], r[:, 10] = history, book, 1
        model.predict_on_batch({"tokens": x, "resets": np.zeros_like(r)})  # carried state
        scores = np.asarray(model.predict_on_batch({"tokens": x, "resets": r}))
        assert not np.allclose(scores[0, :10], scores[1, :10])
        begin = 10
    part = slice(begin, begin + len(book))
    for row in range(1, batch):
        np.testing.assert_allclose(scores[row, part], scores[0, part], atol=1e-5)


def test_a_shelf_run_evaluates_generates_and_resumes(shelf_run, capsys):
    assert main(["evaluate", str(shelf_run)]) == 0
    assert main(["generate", str(shelf_run), "--prime", "the ", "--length", "40",
                 "--seed", "1"]) == 0
    assert len(capsys.readouterr().out) >= 40
    assert main(["train", "--run-dir", str(shelf_run), "--resume",
                 "--set", "train.epochs=3"]) == 0
    assert json.loads((shelf_run / "progress.json").read_text())["epochs_done"] == 3


def test_a_run_trained_before_documents_were_kept_apart_resumes_joined(tmp_path):
    from toolkit.config.schema import upgrade_stored

    old = {"sequences": {"use": "stream", "batch_size": 4, "length": 16}, "train": {}}
    assert upgrade_stored(old)["sequences"]["documents"] == "joined"
    new = {"sequences": {"use": "stream", "documents": "separate"}, "train": {}}
    assert upgrade_stored(new)["sequences"]["documents"] == "separate"


def test_a_core_that_cannot_reset_rows_is_refused_before_any_work(tmp_path, tiny_config, capsys):
    text = tiny_config.read_text().replace(
        "units = 16", "units = 16\nrecurrent_dropout = 0.1").replace(
        "length = 16", "length = 16\ndocuments = \"separate\"")
    tiny_config.write_text(text)
    assert main(["train", str(tiny_config), "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "sequences.documents" in error and "recurrent_dropout = 0" in error
    assert not (tmp_path / "run").exists()
    # aligned documents zero the state before a batch: recurrent dropout is fine there
    tiny_config.write_text(text.replace('documents = "separate"', 'documents = "aligned"'))
    assert main(["train", str(tiny_config), "--run-dir", str(tmp_path / "run")]) == 0
