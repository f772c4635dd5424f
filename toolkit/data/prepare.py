"""From a corpus to token ids: read, preprocess, split, fit the vocabulary, encode.

The sequence builder decides the split (``SequenceBuilder.plan_split``): a language
model holds out the tail of every document, an attribution builder holds out
passages, regions or whole documents. The vocabulary is fitted on the training
split only.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from toolkit.data import cache
from toolkit.errors import ToolkitError
from toolkit.hookspecs import Document
from toolkit.data.preprocess import Preprocessor, tokenize_documents
from toolkit.data.progress import TextProgress
from toolkit.splits import Split
from toolkit.data.tokenstore import TokenStore, smallest_id_type
from toolkit.data.vocab import OOV, Vocabulary, WordPieceVocabulary

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
    resolved = resolved.to_dict() if hasattr(resolved, "to_dict") else resolved
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
                   vocab, cache_settings(resolved) if settings["cache"] else None,
                   settings["preprocess_workers"])


def prepare(corpus, preprocessor: Preprocessor, vocab_settings: dict, builder,
            validation_fraction: float, seed: int = 1, vocab: Vocabulary | None = None,
            cache_settings: dict | None = None, workers: int = 0) -> Prepared:
    """Tokenize every document, split as ``builder`` plans, fit (or reuse) the vocabulary, encode.

    The corpus is read one document at a time and nothing grows with its size in
    memory: tokens go to disk as they come (:class:`~toolkit.data.tokenstore.TokenStore`),
    the vocabulary is fitted from counts, and each split's ids are written to one file
    of the smallest integer type that holds the vocabulary, then memory-mapped. With
    ``cache_settings`` (see :func:`cache_settings`) that file is the token-id cache's
    entry, looked up first. ``workers`` processes preprocess a corpus that takes more
    than half a second (0: one per core; see :func:`~toolkit.data.preprocess.tokenize_documents`).
    """
    size = 0  # characters, counted while the cache key reads every document

    def counted(documents):
        nonlocal size
        for document in documents:
            size += len(document.text)
            yield document

    key = (cache.cache_key(counted(corpus.documents()), cache_settings) if cache_settings
           else None)
    store_key = key
    if key is not None:
        hit = cache.load(key)
        if hit is not None and (vocab is None or hit[1].tokens == vocab.tokens):
            splits, cached_vocab, stats = hit
            return Prepared(splits, cached_vocab, {**stats, "cache": "hit"})
        if hit is not None:  # the entry holds another vocabulary's ids: keep this one aside
            store_key = None

    folder, in_cache = cache.new_entry(store_key)
    store = TokenStore(folder / "tokens.tmp")
    try:
        documents = read_documents(corpus, preprocessor, store, workers,
                                   TextProgress(size if key else None))
        plan = builder.plan_split(documents, [store.tokens(d) for d in range(len(documents))],
                                  validation_fraction, seed)
        train_tokens = sum(s.stop - s.start for s in plan["train"])
        if not train_tokens:
            raise ToolkitError(f"corpus {corpus.describe()} gave no tokens to train on "
                               f"({len(documents)} documents)")
        if vocab is None:
            vocab = fit_vocabulary(store, plan["train"], vocab_settings)
        stats = {"documents": len(documents), "vocab_size": len(vocab),
                 "unit": preprocessor.unit, f"train_{preprocessor.unit}": train_tokens}
        index = {name: write_split(store, segments, documents, vocab, folder / f"{name}.ids",
                                   name, stats)
                 for name, segments in plan.items()}
        store.close()
        cache.write_index(folder, index, vocab, stats)
        splits, vocab, stats = cache.commit(folder, store_key, in_cache)
    except BaseException:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Prepared(splits, vocab, {**stats, "cache": "miss" if key else "off"})


def read_documents(corpus, preprocessor: Preprocessor, store: TokenStore, workers: int = 1,
                   progress: TextProgress | None = None) -> list[Document]:
    """Tokenize the corpus into ``store`` in corpus order, by ``workers`` processes once it
    takes more than half a second; each document's name and label are kept (not its
    text), and at most a few texts are in memory at a time."""
    progress = progress or TextProgress()
    documents, characters = [], 0
    for document, tokens in tokenize_documents(corpus.documents(), preprocessor, workers):
        store.add(tokens)
        documents.append(Document("", document.name, document.label))
        characters += len(document.text)
        del document, tokens  # before the next one is read
        progress.update(len(documents), characters)
    progress.close()
    return documents


def fit_vocabulary(store: TokenStore, segments, settings: dict) -> Vocabulary:
    """The vocabulary of the training segments, as ``[vocab]`` asks."""
    if settings.get("subword") == "wordpiece":
        words = chain.from_iterable(store.tokens(s.document)[s.start:s.stop] for s in segments)
        return WordPieceVocabulary.fit(words, settings["min_count"], settings["max_size"])
    return Vocabulary.from_counts(store.counts(segments), settings["min_count"],
                                  settings["max_size"])


def write_split(store: TokenStore, segments, documents, vocab: Vocabulary, path, name: str,
                stats: dict) -> dict:
    """Encode ``segments`` into one file of ids at ``path``; their index entry (lengths,
    labels, sources, id type). Adds the split's token count and OOV rate to ``stats``."""
    dtype = smallest_id_type(len(vocab))
    # WordPiece turns a token into one or more pieces: encode the tokens themselves.
    table = None if isinstance(vocab, WordPieceVocabulary) else store.table(vocab)
    lengths, oov = [], 0
    with open(path, "wb") as out:
        for s in segments:
            written = 0
            for ids in store.chunks(s.document, s.start, s.stop):
                encoded = vocab.encode(store.decode(ids)) if table is None else table[ids]
                out.write(encoded.astype(dtype).tobytes())
                written += len(encoded)
                oov += int(np.count_nonzero(encoded == OOV))
            lengths.append(written)
    total = sum(lengths)
    stats[f"{name}_tokens"] = total
    stats[f"{name}_segments"] = len(segments)
    stats[f"{name}_oov_rate"] = oov / total if total else 0.0
    return {"lengths": lengths, "dtype": dtype.str,
            "labels": [documents[s.document].label for s in segments],
            "sources": [f"{documents[s.document].name}:{s.start}-{s.stop}" for s in segments]}
