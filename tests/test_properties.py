"""Property-based tests (hypothesis): the stream layout, passage splits, vocabulary round
trips and the config parser hold for inputs nobody wrote by hand."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from toolkit.config import schema as config_module
from toolkit.default_plugins.passages import PassageBuilder
from toolkit.default_plugins.sequences import stream_layout
from toolkit.errors import ToolkitError
from toolkit.hookspecs import Document
from toolkit.plugins import registry
from toolkit.data.vocab import Vocabulary

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(n=st.integers(2, 400), batch_size=st.integers(1, 9), length=st.integers(1, 25),
       offset=st.integers(0, 30), data=st.data())
def test_streams_feed_every_pair_once_in_order_and_rows_continue(n, batch_size, length,
                                                                 offset, data):
    assume(n - 1 - offset >= batch_size)
    ids = np.asarray(data.draw(st.lists(st.integers(2, 50), min_size=n, max_size=n)), np.int32)
    x, y, w, resets = stream_layout(ids, batch_size, length, offset)
    assert not resets.any(), "one document: no state resets"
    assert x.shape == y.shape == w.shape and x.shape[1:] == (batch_size, length)
    # row i of batch k + 1 continues row i of batch k: rows read across batches
    rows_x = x.transpose(1, 0, 2).reshape(batch_size, -1)
    rows_y = y.transpose(1, 0, 2).reshape(batch_size, -1)
    rows_w = w.transpose(1, 0, 2).reshape(batch_size, -1)
    fed_x = np.concatenate([r[m > 0] for r, m in zip(rows_x, rows_w)])
    fed_y = np.concatenate([r[m > 0] for r, m in zip(rows_y, rows_w)])
    usable = ids[offset:]
    np.testing.assert_array_equal(fed_x, usable[:-1])
    np.testing.assert_array_equal(fed_y, usable[1:])
    for m in rows_w:
        real = np.flatnonzero(m)
        assert len(real) == 0 or real[-1] == len(real) - 1, "padding only at a row's end"
    # the number of batches does not depend on the offset
    assert x.shape[0] == stream_layout(ids, batch_size, length, 0)[0].shape[0]


def test_passage_splits_never_put_a_token_in_two_splits():
    reached = []

    @SETTINGS
    # Any lengths (many refused: too short, one document per author), and shelves of four
    # or more real documents, which every kind of split must be able to plan.
    @given(lengths=st.lists(st.integers(0, 600), min_size=2, max_size=8)
           | st.lists(st.integers(60, 600), min_size=4, max_size=8),
           by=st.sampled_from(["region", "passage", "document"]),
           length=st.integers(5, 60), validation=st.sampled_from([0.0, 0.1, 0.25]),
           seed=st.integers(0, 5))
    def check(lengths, by, length, validation, seed):
        documents = [Document("x" * n, f"doc{i}", f"author{i % 2}")
                     for i, n in enumerate(lengths)]
        tokens = [list(d.text) for d in documents]
        builder = PassageBuilder(length=length, split={"by": by, "test": 0.2})
        try:
            plan = builder.plan_split(documents, tokens, validation, seed)
        except ToolkitError as err:
            # refused in one line (too short, one document per author): not a crash
            assert str(err) and "\n" not in str(err)
            assume(False)
        reached.append(by)
        owner = {}
        for split, segments in plan.items():
            for s in segments:
                assert 0 <= s.start < s.stop <= lengths[s.document]
                assert s.stop - s.start <= length
                for position in range(s.start, s.stop):
                    assert owner.setdefault((s.document, position), split) == split
        assert plan == builder.plan_split(documents, tokens, validation, seed), "reproducible"

    check()
    # most examples must reach the asserts, for every kind of split
    assert len(reached) >= 30 and set(reached) == {"region", "passage", "document"}, \
        f"only {len(reached)} examples reached the asserts: {sorted(set(reached))}"


@SETTINGS
@given(tokens=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=200),
       min_count=st.integers(1, 3))
def test_vocabulary_round_trips(tokens, min_count):
    vocab = Vocabulary.fit(tokens, min_count=min_count)
    again = Vocabulary.from_json(vocab.to_json())
    assert again.tokens == vocab.tokens
    ids = vocab.encode(tokens)
    kept = [t if t in vocab.ids else vocab.tokens[1] for t in tokens]
    assert vocab.decode(ids) == kept
    if min_count == 1:
        assert vocab.decode(ids) == tokens


KEYS = st.sampled_from(["corpus", "encoder", "sequences", "core", "head", "train", "vocab",
                        "init", "generate", "preprocess", "use", "units", "dim", "text",
                        "batch_size", "length", "epochs", "copy", "run", "split", "by", "x"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8) | st.sampled_from(["lstm", "stream", "inline", "chars", "onehot"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12)


@SETTINGS
@given(raw=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_config_is_resolved_or_refused_in_one_line(raw):
    reg = registry()
    try:
        resolved = config_module.resolve(raw, reg, config_file="random.toml")
        config_module.build_components(resolved, reg, config_file="random.toml")
    except ToolkitError as err:  # anything else would be a traceback for the user
        assert str(err) and "\n" not in str(err)


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_file_text_is_read_or_refused(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "random.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config_module.load(path, registry(), ["train.epochs=1"])
    except ToolkitError as err:
        assert str(path) in str(err) and "\n" not in str(err)
