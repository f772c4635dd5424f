"""From a corpus to token ids: read, preprocess, split, fit the vocabulary, encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from toolkit import cache
from toolkit.errors import ToolkitError
from toolkit.preprocess import Preprocessor
from toolkit.vocab import OOV, Vocabulary, WordPieceVocabulary


@dataclass
class Prepared:
    """Token ids of the training and validation splits, and the vocabulary fitted on training."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    vocab: Vocabulary
    stats: dict = field(default_factory=dict)


def split_tokens(tokens: list[str], validation_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last ``validation_fraction`` of one document's tokens."""
    held_out = int(round(len(tokens) * validation_fraction))
    cut = len(tokens) - held_out
    return tokens[:cut], tokens[cut:]


def cache_settings(resolved: dict) -> dict:
    """The parts of a resolved config that decide the token ids (the cache key's settings)."""
    return {section: resolved[section] for section in ("corpus", "preprocess", "vocab")}


def prepare(corpus, preprocessor: Preprocessor, vocab_settings: dict,
            validation_fraction: float, vocab: Vocabulary | None = None,
            cache_settings: dict | None = None) -> Prepared:
    """Tokenize every document, split each one, fit (or reuse) the vocabulary and encode.

    Documents are concatenated in corpus order within each split. With
    ``cache_settings`` (the resolved preprocessing and vocabulary config) the result
    is looked up in, and stored to, the token-id cache.
    """
    documents = list(corpus.documents())
    key = None
    if cache_settings is not None:
        key = cache.cache_key(documents, {**cache_settings,
                                          "validation_fraction": validation_fraction})
        hit = cache.load(key)
        if hit is not None and (vocab is None or hit[2].tokens == vocab.tokens):
            train_ids, val_ids, cached_vocab, stats = hit
            return Prepared(train_ids, val_ids, cached_vocab, {**stats, "cache": "hit"})

    train_parts, val_parts = [], []
    for document in documents:
        train, val = split_tokens(preprocessor(document.text), validation_fraction)
        train_parts.append(train)
        val_parts.append(val)
    train_tokens = list(chain.from_iterable(train_parts))
    val_tokens = list(chain.from_iterable(val_parts))
    if not train_tokens:
        raise ToolkitError(f"corpus {corpus.describe()} gave no tokens to train on "
                           f"({len(documents)} documents)")
    if vocab is None:
        kind = WordPieceVocabulary if vocab_settings.get("subword") == "wordpiece" else Vocabulary
        vocab = kind.fit(train_tokens, vocab_settings["min_count"], vocab_settings["max_size"])
    train_ids, val_ids = vocab.encode(train_tokens), vocab.encode(val_tokens)
    stats = {
        "documents": len(documents),
        "train_tokens": len(train_ids),
        "validation_tokens": len(val_ids),
        "train_words": len(train_tokens),
        "vocab_size": len(vocab),
        "train_oov_rate": float(np.mean(train_ids == OOV)) if len(train_ids) else 0.0,
        "validation_oov_rate": float(np.mean(val_ids == OOV)) if len(val_ids) else 0.0,
    }
    if key is not None:
        cache.store(key, train_ids, val_ids, vocab, stats)
    return Prepared(train_ids, val_ids, vocab, {**stats, "cache": "miss" if key else "off"})
