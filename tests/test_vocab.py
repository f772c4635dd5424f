"""The vocabulary (whole tokens and WordPiece) and the token-id cache: core features."""

import numpy as np

from toolkit import plugins

from toolkit.data import cache
from toolkit.config.schema import build_components, resolve
from toolkit.data.prepare import prepare
from toolkit.data.preprocess import Preprocessor
from toolkit.data.vocab import OOV, Vocabulary


def pipeline(*stages, corpus):
    raw = {"corpus": corpus, "preprocess": list(stages)}
    components = build_components(resolve(raw, plugins.registry()), plugins.registry())
    return Preprocessor(components.stages), components


def test_vocabulary_limits_round_trip_and_unknown_tokens():
    tokens = "a a a b b c".split()
    vocab = Vocabulary.fit(tokens, min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    assert list(vocab.encode(["a", "c", "b"])) == [2, OOV, 3]
    assert Vocabulary.fit(tokens, max_size=1).tokens[2:] == ["a"]
    assert Vocabulary.from_json(vocab.to_json()).tokens == vocab.tokens
    assert vocab.unknown(["c", "a", "d", "c"]) == ["c", "d"]


def test_token_ids_are_cached_and_invalidated(tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_CACHE", str(tmp_path))
    text = tmp_path / "book.txt"
    text.write_text("It was the best of times, it was the worst of times. " * 20)
    corpus = {"use": "text", "path": str(text)}

    def run(stages, vocab=None):
        preprocessor, components = pipeline(*stages, corpus=corpus)
        settings = {"preprocess": stages, "vocab": vocab or {"min_count": 1, "max_size": 0}}
        return prepare(components.corpus, preprocessor, settings["vocab"],
                       components.sequences, 0.1, cache_settings=settings)

    words = [{"use": "chars"}]
    first = run(words)
    assert first.stats["cache"] == "miss"
    second = run(words)
    assert second.stats["cache"] == "hit"
    np.testing.assert_array_equal(first.train_ids, second.train_ids)
    assert second.vocab.tokens == first.vocab.tokens
    assert run([{"use": "lowercase"}, *words]).stats["cache"] == "miss"
    assert run(words, {"min_count": 2, "max_size": 0}).stats["cache"] == "miss"
    text.write_text(text.read_text() + "And then it ended.")
    assert run(words).stats["cache"] == "miss"
    assert len(list(cache.cache_dir().iterdir())) == 4


def test_wordpiece_vocabulary_has_no_unknown_words():
    from toolkit.data.vocab import WordPieceVocabulary

    words = ("the walker was walking and talking while the talker walked " * 30).split()
    vocab = WordPieceVocabulary.fit(words, max_size=40)
    ids = vocab.encode(["walking", "stalking", "the"])
    assert OOV not in ids, "an unseen word is spelled with known pieces"
    assert vocab.decode(ids) == ["walking", "stalking", "the"]
    assert len(ids) > 3
    again = Vocabulary.from_json(vocab.to_json())
    assert isinstance(again, WordPieceVocabulary)
    np.testing.assert_array_equal(again.encode(["walking"]), vocab.encode(["walking"]))
    assert vocab.unknown(["walk", "xylophone"]) == ["xylophone"]
