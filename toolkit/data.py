"""From a corpus to token ids: read, preprocess, split, fit the vocabulary, encode.

The sequence builder decides the split (``SequenceBuilder.plan_split``): a language
model holds out the tail of every document, an attribution builder holds out
passages, regions or whole documents. The vocabulary is fitted on the training
split only.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from toolkit import cache
from toolkit.errors import ToolkitError
from toolkit.preprocess import Preprocessor
from toolkit.splits import Split
from toolkit.vocab import OOV, Vocabulary, WordPieceVocabulary

@dataclass
class Prepared:
    """The splits as token ids, and the vocabulary fitted on the training split."""

    splits: dict[str, Split]
    vocab: Vocabulary
    stats: dict = field(default_factory=dict)

    @property
    def train_ids(self) -> np.ndarray:
        return self.splits["train"].concatenated()

    @property
    def val_ids(self) -> np.ndarray:
        return self.splits["validation"].concatenated()

    @property
    def labels(self) -> list[str]:
        """The distinct labels of the training split, sorted: class ``i`` is ``labels[i]``."""
        return sorted({label for label in self.splits["train"].labels if label is not None})


def cache_settings(resolved: dict) -> dict:
    """The parts of a resolved config that decide the token ids and the split (the cache key)."""
    sequences = {k: v for k, v in resolved["sequences"].items() if k != "batch_size"}
    return {**{section: resolved[section] for section in ("corpus", "preprocess", "vocab")},
            "sequences": sequences, "head": resolved["head"]["use"],
            "validation_fraction": resolved["train"]["validation_fraction"],
            "seed": resolved["train"]["seed"]}


def prepare_config(components, resolved: dict, vocab: Vocabulary | None = None) -> Prepared:
    """:func:`prepare` with everything taken from a resolved config and its components."""
    settings = resolved["train"]
    return prepare(components.corpus, Preprocessor(components.stages), resolved["vocab"],
                   components.sequences, settings["validation_fraction"], settings["seed"],
                   vocab, cache_settings(resolved) if settings["cache"] else None)


def preprocess_all(documents, preprocessor: Preprocessor, every: float = 10.0) -> list[list[str]]:
    """Every document's tokens; a long run prints a progress line every ``every`` seconds."""
    total = sum(len(d.text) for d in documents) / 1e6
    tokens, done, start = [], 0.0, time.perf_counter()
    last = start
    for i, document in enumerate(documents):
        tokens.append(preprocessor(document.text))
        done += len(document.text) / 1e6
        now = time.perf_counter()
        if now - last >= every:
            last = now
            print(f"preprocessing: {i + 1}/{len(documents)} documents, {done:.1f}/{total:.1f} "
                  f"MB of text, {done / (now - start):.2f} MB/s", file=sys.stderr, flush=True)
    return tokens


def prepare(corpus, preprocessor: Preprocessor, vocab_settings: dict, builder,
            validation_fraction: float, seed: int = 1, vocab: Vocabulary | None = None,
            cache_settings: dict | None = None) -> Prepared:
    """Tokenize every document, split as ``builder`` plans, fit (or reuse) the vocabulary, encode.

    With ``cache_settings`` (see :func:`cache_settings`) the result is looked up in,
    and stored to, the token-id cache.
    """
    documents = list(corpus.documents())
    key = None
    if cache_settings is not None:
        key = cache.cache_key(documents, cache_settings)
        hit = cache.load(key)
        if hit is not None and (vocab is None or hit[1].tokens == vocab.tokens):
            splits, cached_vocab, stats = hit
            return Prepared(splits, cached_vocab, {**stats, "cache": "hit"})

    tokens = preprocess_all(documents, preprocessor)
    plan = builder.plan_split(documents, tokens, validation_fraction, seed)
    train_parts = [tokens[s.document][s.start:s.stop] for s in plan["train"]]
    if all(isinstance(part, str) for part in train_parts):  # characters: keep one str
        train_tokens = "".join(train_parts)
    else:
        train_tokens = list(chain.from_iterable(train_parts))
    if not train_tokens:
        raise ToolkitError(f"corpus {corpus.describe()} gave no tokens to train on "
                           f"({len(documents)} documents)")
    if vocab is None:
        kind = WordPieceVocabulary if vocab_settings.get("subword") == "wordpiece" else Vocabulary
        vocab = kind.fit(train_tokens, vocab_settings["min_count"], vocab_settings["max_size"])

    splits = {}
    for name, segments in plan.items():
        split = Split()
        for s in segments:
            document = documents[s.document]
            split.ids.append(vocab.encode(tokens[s.document][s.start:s.stop]))
            split.labels.append(document.label)
            split.sources.append(f"{document.name}:{s.start}-{s.stop}")
        splits[name] = split
    stats = {"documents": len(documents), "vocab_size": len(vocab),
             "unit": preprocessor.unit, f"train_{preprocessor.unit}": len(train_tokens)}
    for name, split in splits.items():
        ids = split.concatenated()
        stats[f"{name}_tokens"] = len(ids)
        stats[f"{name}_segments"] = len(split)
        stats[f"{name}_oov_rate"] = float(np.mean(ids == OOV)) if len(ids) else 0.0
    if key is not None:
        cache.store(key, splits, vocab, stats)
    return Prepared(splits, vocab, {**stats, "cache": "miss" if key else "off"})
