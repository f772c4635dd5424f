"""Corpora bigger than memory: read one document at a time, tokens on disk, ids memory-mapped
with the smallest integer type, streams that read only the batch they need."""

import os
import weakref

import numpy as np
import pytest

from toolkit import plugins

from toolkit.data import tokenstore
from toolkit.config.schema import build_components, resolve
from toolkit.data.prepare import prepare
from toolkit.default_plugins.sequences import StreamBuilder
from toolkit.errors import ToolkitError
from toolkit.hookspecs import Document, Stage
from toolkit.data.preprocess import Preprocessor
from toolkit.data.vocab import OOV

WORDS = "the a of and to in was he it his that with as had for on her by at which".split()


class GeneratedCorpus:
    """Documents made as they are asked for; remembers which are still alive."""

    def __init__(self, count, words=False, seed=0):
        self.count, self.words, self.seed = count, words, seed
        self.alive_at_yield = []
        self.made = []

    def text(self, d):
        rng = np.random.default_rng([self.seed, d])
        if self.words:
            vocab = WORDS + [f"w{i}" for i in range(400)]
            return " ".join(rng.choice(vocab, 300 + 50 * d)) + "\n"
        return "".join(rng.choice(list("abcdefghij \n"), 500 + 97 * d))

    def documents(self):
        for d in range(self.count):
            # No gc.collect(): documents are freed by reference counting, and one kept
            # alive by a reference cycle counts as alive (it is, until a collection).
            self.alive_at_yield.append(sum(ref() is not None for ref in self.made))
            document = Document(self.text(d), f"doc{d}", "even" if d % 2 == 0 else "odd")
            self.made.append(weakref.ref(document))
            yield document
            del document

    def describe(self):
        return "generated"


def prepared(corpus, stages, builder=None, cache_settings=None, vocab=None, workers=0):
    raw = {"corpus": {"use": "inline", "text": "x"}, "preprocess": stages}
    components = build_components(resolve(raw, plugins.registry()), plugins.registry())
    return Preprocessor(components.stages), prepare(
        corpus, Preprocessor(components.stages), vocab or {"min_count": 1, "max_size": 0},
        builder or StreamBuilder(4, 10), 0.2, cache_settings=cache_settings, workers=workers)


@pytest.mark.parametrize("words", [False, True])
def test_ids_equal_encoding_each_document_in_memory_whatever_the_chunk_size(words,
                                                                            monkeypatch):
    stages = [{"use": "nltk-words"}] if words else [{"use": "chars"}]
    reference_pre, reference = prepared(GeneratedCorpus(5, words), stages)
    monkeypatch.setattr(tokenstore, "CHUNK", 7)  # many chunks per document
    _, chunked = prepared(GeneratedCorpus(5, words), stages)
    assert chunked.vocab.tokens == reference.vocab.tokens
    corpus = GeneratedCorpus(5, words)
    texts = [reference_pre(corpus.text(d)) for d in range(5)]
    for name, split in chunked.splits.items():
        assert split.places == reference.splits[name].places
        for ids, source in zip(split.ids, split.places):
            d, span = source.split(":")
            start, stop = map(int, span.split("-"))
            expected = reference.vocab.encode(texts[int(d[3:])][start:stop])
            np.testing.assert_array_equal(ids, expected)
    # the vocabulary was fitted on the training split only
    train_tokens = set()
    for source in chunked.splits["train"].places:
        d, span = source.split(":")
        start, stop = map(int, span.split("-"))
        train_tokens.update(texts[int(d[3:])][start:stop])
    assert set(chunked.vocab.tokens[2:]) == train_tokens


def test_prepare_holds_one_document_at_a_time_and_maps_the_smallest_id_type():
    corpus = GeneratedCorpus(6)
    _, chars = prepared(corpus, [{"use": "chars"}], workers=1)
    assert max(corpus.alive_at_yield) == 0, "an earlier document was still in memory"
    ids = chars.splits["train"].concatenated()
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint8
    assert chars.splits["train"].ids[1].base is not None, "segments are views, not copies"
    _, words = prepared(GeneratedCorpus(6, words=True), [{"use": "nltk-words"}])
    assert len(words.vocab) > 256
    assert words.splits["train"].concatenated().dtype == np.uint16


@pytest.mark.parametrize("documents", ["aligned", "separate"])
def test_streams_read_memory_mapped_ids_with_offsets_and_document_resets(documents):
    _, data = prepared(GeneratedCorpus(4), [{"use": "chars"}])
    builder = StreamBuilder(batch_size=3, length=8, documents=documents)
    stream = builder.data(data.splits["train"])
    assert isinstance(stream.ids, np.memmap) and len(stream.starts) == 3
    batches = builder.training(stream, seed=1)
    batches.set_epoch(3)
    last = len(batches) - 1
    inputs, targets, weights = batches[last]
    assert inputs["tokens"].dtype == np.int32 and targets.dtype == np.int32
    flat = np.asarray(stream.ids)
    if documents == "separate":
        assert inputs["resets"].shape == (3, 8)
        row = batches.layout.row_begin[0] + last * 8
    else:
        assert inputs["starts"].shape == (3,)
        row = batches.layout.window_begin[last]  # row 0 reads windows 0, 1, ... in turn
    real = weights[0] > 0
    assert real.any()
    np.testing.assert_array_equal(inputs["tokens"][0][real], flat[row:row + 8][real])


def test_the_cache_maps_its_entry_and_an_uncached_run_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "cache"))
    settings = {"corpus": "generated", "seed": 0}
    _, first = prepared(GeneratedCorpus(3), [{"use": "chars"}], cache_settings=settings)
    _, second = prepared(GeneratedCorpus(3), [{"use": "chars"}], cache_settings=settings)
    assert (first.stats["cache"], second.stats["cache"]) == ("miss", "hit")
    hit = second.splits["validation"].concatenated()
    assert isinstance(hit, np.memmap)
    np.testing.assert_array_equal(hit, first.splits["validation"].concatenated())
    assert second.stats["validation_oov_rate"] == first.stats["validation_oov_rate"]
    entries = list((tmp_path / "cache" / "ids").iterdir())
    assert len(entries) == 1 and not list(entries[0].glob("*.tmp")), "tokens file removed"

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    _, uncached = prepared(GeneratedCorpus(3), [{"use": "chars"}])
    assert uncached.stats["cache"] == "off"
    assert not list((tmp_path / "tmp").iterdir()), "temporary ids folder left behind"
    np.testing.assert_array_equal(uncached.splits["train"].concatenated(),
                                  first.splits["train"].concatenated())


def test_unknown_tokens_outside_training_are_counted_as_oov():
    _, data = prepared(GeneratedCorpus(2), [{"use": "chars"}],
                       vocab={"min_count": 1, "max_size": 3})
    ids = np.concatenate([np.asarray(a) for a in data.splits["validation"].ids])
    assert data.stats["validation_oov_rate"] == pytest.approx(np.mean(ids == OOV))
    assert data.stats["validation_oov_rate"] > 0


def test_a_cache_entry_of_another_vocabulary_is_never_used_for_a_given_one(tmp_path,
                                                                          monkeypatch):
    from toolkit.data.vocab import Vocabulary

    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path / "cache"))
    settings = {"corpus": "generated", "seed": 0}
    pre, first = prepared(GeneratedCorpus(2), [{"use": "chars"}], cache_settings=settings)
    given = Vocabulary(list(reversed(first.vocab.tokens[2:])))  # a resumed run's own ids
    raw = {"corpus": {"use": "inline", "text": "x"}, "preprocess": [{"use": "chars"}]}
    components = build_components(resolve(raw, plugins.registry()), plugins.registry())
    again = prepare(GeneratedCorpus(2), Preprocessor(components.stages),
                    {"min_count": 1, "max_size": 0}, StreamBuilder(4, 10), 0.2,
                    vocab=given, cache_settings=settings)
    assert again.vocab.tokens == given.tokens and again.stats["cache"] == "miss"
    text = pre(GeneratedCorpus(2).text(0))
    np.testing.assert_array_equal(again.splits["train"].ids[0],
                                  given.encode(text[:len(again.splits["train"].ids[0])]))
    assert prepared(GeneratedCorpus(2), [{"use": "chars"}],
                    cache_settings=settings)[1].stats["cache"] == "hit"


# --- preprocessing on every core ---------------------------------------------------------

def same_prepared(a, b):
    assert a.vocab.tokens == b.vocab.tokens and a.stats == b.stats
    for name in ("train", "validation"):
        assert np.array_equal(a.splits[name].concatenated(), b.splits[name].concatenated())
        assert a.splits[name].places == b.splits[name].places
        assert a.splits[name].labels == b.splits[name].labels


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("words", [False, True])
def test_worker_processes_give_the_serial_tokens_in_corpus_order(words, method, monkeypatch,
                                                                 capfd):
    from toolkit.data import preprocess

    stages = ([{"use": "lowercase"}, {"use": "nltk-words"}, {"use": "nltk-stopwords"}] if words
              else [{"use": "chars"}])
    _, serial = prepared(GeneratedCorpus(9, words), stages, workers=1)
    pools, make_pool = [], preprocess.worker_pool
    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)  # workers from the second document
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "IN_FLIGHT", 0)  # so at most two per worker
    monkeypatch.setattr(preprocess, "start_method", lambda: method)
    monkeypatch.setattr(preprocess, "worker_pool", lambda *a: pools.append(make_pool(*a))
                        or pools[-1])
    corpus = GeneratedCorpus(9, words)
    _, parallel = prepared(corpus, stages, workers=2)
    assert len(pools) == 1 and pools[0]._mp_context.get_start_method() == method
    assert "worker processes stopped" not in capfd.readouterr().err  # they did the work
    same_prepared(serial, parallel)
    assert max(corpus.alive_at_yield) <= 5  # two per worker in flight, and the one read


def test_stages_faster_than_sending_the_text_stay_in_this_process(monkeypatch):
    from toolkit.data import preprocess

    pools = []
    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "worker_pool", lambda *a: pools.append(a))
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", 1.0)  # every stage is "fast"
    prepared(GeneratedCorpus(5), [{"use": "chars"}], workers=2)
    assert pools == []
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    prepared(GeneratedCorpus(5), [{"use": "chars"}], workers=2)
    assert len(pools) == 1


def test_short_documents_in_flight_are_capped_by_count(monkeypatch):
    from toolkit.data import preprocess

    pending_sizes = []
    take = preprocess.take
    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "MAX_PENDING", 3)
    monkeypatch.setattr(preprocess, "take",
                        lambda handed: pending_sizes.append(len(handed.pieces)) or take(handed))
    corpus = GeneratedCorpus(40)
    prepared(corpus, [{"use": "chars"}], workers=2)
    assert max(pending_sizes) == 7  # 3 per worker, and the one just handed over


def die(text):
    os._exit(3)


def test_when_a_worker_dies_the_rest_is_preprocessed_here_in_order(monkeypatch, capfd):
    from toolkit.data import preprocess

    _, serial = prepared(GeneratedCorpus(6), [{"use": "chars"}], workers=1)
    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "start_method", lambda: "fork")
    monkeypatch.setattr(preprocess, "preprocess_in_worker", die)
    _, rescued = prepared(GeneratedCorpus(6), [{"use": "chars"}], workers=2)
    same_prepared(serial, rescued)
    assert "worker processes stopped" in capfd.readouterr().err


class Refusal(Exception):
    """An error that cannot come back from a worker: unpickling calls it with one argument."""

    def __init__(self, token, reason):
        super().__init__(f"{token}: {reason}")


class Picky(Stage):
    """A stage that refuses the token "w7"."""

    consumes = produces = "tokens"

    def __call__(self, tokens):
        if "w7" in tokens:
            raise Refusal("w7", "refused")
        return tokens


class ListCorpus:
    def __init__(self, texts):
        self.texts = texts

    def documents(self):
        return (Document(text, f"doc{i}", None) for i, text in enumerate(self.texts))

    def describe(self):
        return "a list"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_stage_that_fails_in_a_worker_raises_its_own_error_here(method, monkeypatch):
    """The worker's error cannot be pickled back; the main process runs the document again
    and raises it with its own type and message."""
    from toolkit.data import preprocess

    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "start_method", lambda: method)
    words, _ = prepared(GeneratedCorpus(1, words=True), [{"use": "nltk-words"}])
    picky = Preprocessor([*words.stages, Picky()])
    collected, take = [], preprocess.take  # documents taken back from workers

    def spy(handed):
        collected.append(handed.pieces[0][0].text)
        return take(handed)

    monkeypatch.setattr(preprocess, "take", spy)
    texts = ["a b c", "d e f", "g h i", "j w7 k", "l m n"]
    with pytest.raises(Refusal, match="w7: refused"):
        prepare(ListCorpus(texts), picky, {"min_count": 1, "max_size": 0},
                StreamBuilder(4, 10), 0.2, workers=2)
    assert collected[-1] == "j w7 k"  # it failed in a worker, and was raised here


class Locked(Stage):
    """A stage that cannot be pickled (it holds a lock)."""

    consumes = produces = "tokens"

    def __init__(self):
        import threading

        self.lock = threading.Lock()

    def __call__(self, tokens):
        return tokens


def test_a_stage_that_cannot_be_pickled_keeps_the_work_in_this_process(monkeypatch):
    from toolkit.data import preprocess

    monkeypatch.setattr(preprocess, "start_method", lambda: "spawn")
    chars, _ = prepared(GeneratedCorpus(1), [{"use": "chars"}])
    pool = preprocess.worker_pool(chars, 2)
    assert pool is not None
    pool.shutdown()
    assert preprocess.worker_pool(Preprocessor([*chars.stages, Locked()]), 2) is None


def test_progress_draws_a_bar_on_a_terminal_and_lines_in_a_log(monkeypatch):
    import io

    from toolkit.data import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    screen = Terminal()
    bar = progress.TextProgress(total=8_000_000, stream=screen)
    for done in range(1, 5):
        now[0] += 1.0
        bar.update(done, done * 2_000_000)
    bar.close()
    frames = screen.getvalue().split("\r")[1:]
    assert len(frames) == 5 and frames[-1].endswith("\n")
    assert "50%" in frames[1] and "100%" in frames[-1] and "2.00 MB/s" in frames[-1]
    assert "0:02 left" in frames[1]

    small = Terminal()  # a small corpus that is done quickly shows nothing
    quiet = progress.TextProgress(total=100_000, stream=small)
    quiet.update(1, 100_000)
    quiet.close()
    assert small.getvalue() == ""

    log = io.StringIO()
    lines = progress.TextProgress(total=None, stream=log, every=10.0)
    for done in range(1, 26):
        now[0] += 1.0
        lines.update(done, done * 1_000_000)
    lines.close()
    assert log.getvalue().splitlines() == [
        "preprocessing: 10 documents, 10.0 MB of text, 1.00 MB/s",
        "preprocessing: 20 documents, 20.0 MB of text, 1.00 MB/s",
        "preprocessing: 25 documents, 25.0 MB of text, 1.00 MB/s"]


# --- long documents in pieces -------------------------------------------------------------

PIECE_PARTS = ["The", "cat", "the", "a", "İstanbul", "Don't", "end.", "(", ")", "...", " ", "  ",
               "\t", "\n", "\n\n", "\n \n", "\n\n\n", " \n\n ", "x", "--", '"', "1,000"]


def chain(*stages):
    raw = {"corpus": {"use": "inline", "text": "x"}, "preprocess": list(stages)}
    return Preprocessor(build_components(resolve(raw, plugins.registry()),
                                         plugins.registry()).stages)


def test_a_document_in_pieces_gives_the_tokens_of_the_whole():
    """Cut after blank lines, each piece preprocessed alone, joined: the whole document's
    tokens, paragraph marks included, even where stop words leave a piece empty."""
    import hypothesis
    from hypothesis import strategies as st

    chains = [chain({"use": "lowercase"}, {"use": "nltk-words"}, {"use": "nltk-stopwords"}),
              chain({"use": "nltk-words", "lowercase": True}, {"use": "punctuation"},
                    {"use": "stem"}),
              chain({"use": "lowercase"}, {"use": "chars"})]
    assert all(c.piecewise for c in chains)

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(st.lists(st.sampled_from(PIECE_PARTS), max_size=40).map(" ".join),
                      st.integers(1, 30))
    def same(text, size):
        for preprocessor in chains:
            pieces = list(preprocessor.pieces(text, size))
            assert "".join(pieces) == text
            assert all(piece.endswith("\n") for piece in pieces[:-1])
            whole = preprocessor(text)
            joined = preprocessor.join([preprocessor.piece(p) for p in pieces])
            assert list(joined) == list(whole), (pieces, preprocessor.stages)

    same()


def test_a_chain_with_a_stage_that_needs_the_whole_text_is_never_cut():
    text = "one\n\ntwo\n\nthree\n\n" * 10
    assert len(list(chain({"use": "lowercase"}, {"use": "nltk-words"}).pieces(text, 5))) > 5
    for stages in ([{"use": "whitespace"}, {"use": "nltk-words"}],
                   [{"use": "nltk-words", "paragraphs": False}],
                   [{"use": "gutenberg-strip"}, {"use": "chars"}]):
        assert list(chain(*stages).pieces(text, 5)) == [text]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_one_long_document_is_shared_between_the_workers_in_pieces(method, monkeypatch, capfd):
    from toolkit.data import preprocess

    texts = ["A short one.\n", *("\n\n".join(GeneratedCorpus(1, True, seed=s).text(0)
                                             for s in range(30)) for _ in range(1)),
             "And the end."]
    stages = [{"use": "lowercase"}, {"use": "nltk-words"}, {"use": "nltk-stopwords"}]
    _, serial = prepared(ListCorpus(texts), stages, workers=1)
    handed_out = []
    hand_out = preprocess.Handed.hand_out
    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "PIECE", 2_000)
    monkeypatch.setattr(preprocess, "IN_FLIGHT", 0)
    monkeypatch.setattr(preprocess, "start_method", lambda: method)
    monkeypatch.setattr(preprocess.Handed, "hand_out", lambda self, document, piece, last:
                        handed_out.append((document.name, last))
                        or hand_out(self, document, piece, last))
    here, call = [], Preprocessor.__call__  # documents preprocessed in the main process
    monkeypatch.setattr(Preprocessor, "__call__", lambda self, text: here.append(text)
                        or call(self, text))
    _, parallel = prepared(ListCorpus(texts), stages, workers=2)
    same_prepared(serial, parallel)
    long_pieces = [last for name, last in handed_out if name == "doc1"]
    assert len(long_pieces) > 10 and long_pieces[-1] and not any(long_pieces[:-1])
    assert texts[1] not in here  # the workers did it: nothing failed and was redone here
    assert "worker processes stopped" not in capfd.readouterr().err


class BreakingPool:
    """Runs each piece at once; its ``fail_at``-th ``submit`` finds the pool broken."""

    def __init__(self, preprocessor, fail_at):
        from toolkit.data import preprocess

        preprocess.start_worker(preprocessor)
        self.submitted, self.fail_at = 0, fail_at

    def submit(self, function, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        self.submitted += 1
        if self.submitted == self.fail_at:
            raise BrokenProcessPool("a worker could not start")
        future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, **_):
        pass


@pytest.mark.parametrize("fail_at", range(1, 10))
def test_a_pool_that_breaks_at_any_piece_loses_no_document(fail_at, monkeypatch, capfd):
    from toolkit.data import preprocess

    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "IN_FLIGHT", 0)
    monkeypatch.setattr(preprocess, "PIECE", 4)
    pools = []
    monkeypatch.setattr(preprocess, "worker_pool",
                        lambda pre, workers: pools.append(BreakingPool(pre, fail_at)) or pools[0])
    texts = ["first\n", "A b\n\nC\n\nd E\n\nf\n\n" * 3 + "end", "g\n\nh", "last"]
    preprocessor = chain({"use": "lowercase"}, {"use": "chars"})
    documents = [Document(text, f"doc{i}", None) for i, text in enumerate(texts)]
    out = list(preprocess.tokenize_documents(iter(documents), preprocessor, workers=2))
    assert [(d.name, "".join(tokens)) for d, tokens in out] == [
        (f"doc{i}", text.lower()) for i, text in enumerate(texts)]
    assert pools[0].submitted == fail_at  # it broke there, and nothing was submitted after
    assert "worker processes stopped (a worker could not start)" in capfd.readouterr().err


class Unreadable(Stage):
    """A text stage that fails with an ``OSError`` of its own on one document."""

    consumes = produces = "text"

    def __call__(self, text):
        if "bad" in text:
            raise FileNotFoundError("no such file: bad")
        return text


def test_a_stages_own_os_error_is_raised_not_taken_for_a_broken_pool(monkeypatch):
    from toolkit.data import preprocess

    monkeypatch.setattr(preprocess, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(preprocess, "SERIAL_ABOVE", float("inf"))
    monkeypatch.setattr(preprocess, "start_method", lambda: "fork")
    chars = chain({"use": "chars"})
    preprocessor = Preprocessor([Unreadable(), *chars.stages])
    documents = [Document(text, f"doc{i}", None) for i, text in enumerate(["a", "b", "bad", "c"])]
    with pytest.raises(FileNotFoundError, match="no such file: bad"):
        list(preprocess.tokenize_documents(iter(documents), preprocessor, workers=2))
