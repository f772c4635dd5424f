"""A cache of token ids: a (corpus, preprocessing, vocabulary) combination is tokenized once.

The key is a SHA-256 of the corpus, preprocessing, vocabulary and sequence settings,
the validation fraction and seed (they decide the split), the versions of the libraries and plugin packages that tokenize, and the
full text, name and label of every document, so a change to any of them misses the
cache. Entries live under ``$TOOLKIT_CACHE`` (default
``~/.cache/lstm-text-toolkit``) as one ``.npy`` file per split and a JSON index of its
segments; the ids are memory-mapped when read and copied once into memory when a
split's segments are joined.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from toolkit.paths import USER_CACHE
from toolkit.splits import Split
from toolkit.vocab import Vocabulary

FORMAT = 3


def cache_dir() -> Path:
    return Path(os.environ.get("TOOLKIT_CACHE", USER_CACHE)).expanduser() / "ids"


def library_versions() -> dict[str, str]:
    """Versions of the code that turns text into ids: an upgrade must miss the cache."""
    names = {"lstm-text-toolkit", "nltk", "keras-hub", "tensorflow-text"}
    names |= {ep.dist.name for ep in importlib.metadata.entry_points(group="toolkit")
              if ep.dist is not None}
    versions = {}
    for name in sorted(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cache_key(documents, settings: dict) -> str:
    """Hash of the settings and every document's name, label and text."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT, "versions": library_versions(), **settings},
                             sort_keys=True).encode())
    for document in documents:
        for part in (document.name, document.label or "", document.text):
            encoded = part.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
    return digest.hexdigest()


def load(key: str):
    """``(splits, vocab, stats)`` for ``key``, or ``None`` on a miss."""
    entry = cache_dir() / key
    try:
        index = json.loads((entry / "splits.json").read_text())
        splits = {}
        for name, meta in index.items():
            ids = np.load(entry / f"{name}.npy", mmap_mode="r")
            bounds = np.cumsum([0, *meta["lengths"]])
            splits[name] = Split([ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                                 meta["labels"], meta["sources"])
        vocab = Vocabulary.load(entry / "vocab.json")
        stats = json.loads((entry / "stats.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return splits, vocab, stats


def store(key: str, splits: dict, vocab: Vocabulary, stats: dict) -> None:
    """Write an entry atomically (a temporary folder renamed into place); failures are ignored."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key[:12]}."))
        index = {}
        for name, split in splits.items():
            np.save(tmp / f"{name}.npy", split.concatenated())
            index[name] = {"lengths": [len(a) for a in split.ids], "labels": split.labels,
                           "sources": split.sources}
        (tmp / "splits.json").write_text(json.dumps(index, ensure_ascii=False))
        (tmp / "vocab.json").write_text(json.dumps(vocab.to_json(), ensure_ascii=False))
        (tmp / "stats.json").write_text(json.dumps(stats))
        try:
            os.replace(tmp, root / key)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass
