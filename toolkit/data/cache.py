"""A cache of token ids: a (corpus, preprocessing, vocabulary) combination is tokenized once.

The key is a SHA-256 of the corpus, preprocessing, vocabulary and sequence settings,
the validation fraction and seed (they decide the split), the versions of the libraries and plugin packages that tokenize, and the
full text, name and label of every document, so a change to any of them misses the
cache. Entries live under ``$TOOLKIT_CACHE`` (default
``~/.cache/lstm-text-toolkit``) as one ``.ids`` file per split and a JSON index of its
segments; each split's ids are one raw file of the smallest unsigned integer type that
holds the vocabulary, memory-mapped when read: batches read only what they need.
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

from toolkit.data.paths import USER_CACHE
from toolkit.splits import Split
from toolkit.data.vocab import Vocabulary

# 5: attribution splits keep the documents they leave out ("left_out", read by [pretrain]).
FORMAT = 5


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
    """Hash of the settings and every document's name, label and text (``documents`` is
    read once, one document at a time)."""
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
    return load_entry(cache_dir() / key)


def load_entry(entry: Path):
    """``(splits, vocab, stats)`` from an entry folder, the ids memory-mapped (read only when
    a batch needs them), or ``None`` if it is missing or damaged."""
    try:
        index = json.loads((entry / "splits.json").read_text())
        splits = {}
        for name, meta in index.items():
            dtype = np.dtype(meta["dtype"])
            ids = (np.memmap(entry / f"{name}.ids", dtype, mode="r") if sum(meta["lengths"])
                   else np.zeros(0, dtype))
            if len(ids) != sum(meta["lengths"]):
                return None
            bounds = np.cumsum([0, *meta["lengths"]])
            splits[name] = Split([ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                                 meta["labels"], meta["sources"], flat=ids)
        vocab = Vocabulary.load(entry / "vocab.json")
        stats = json.loads((entry / "stats.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return splits, vocab, stats


def new_entry(key: str | None) -> tuple[Path, bool]:
    """A fresh folder to write an entry in, and whether it lies in the cache (a temporary
    folder elsewhere when ``key`` is ``None`` or the cache cannot be written)."""
    if key is not None:
        try:
            root = cache_dir()
            root.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(dir=root, prefix=f".{key[:12]}.")), True
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="toolkit-ids-")), False


def write_index(folder: Path, index: dict, vocab: Vocabulary, stats: dict) -> None:
    """The entry's segment index (lengths, labels, sources, id type), vocabulary and stats;
    the ids themselves are written as ``<split>.ids`` beforehand."""
    (folder / "splits.json").write_text(json.dumps(index, ensure_ascii=False))
    (folder / "vocab.json").write_text(json.dumps(vocab.to_json(), ensure_ascii=False))
    (folder / "stats.json").write_text(json.dumps(stats))


def commit(folder: Path, key: str | None, in_cache: bool):
    """Open a written entry: rename it into the cache first when it belongs there (another
    process may have stored the same entry first: then that one is used). A temporary
    entry's folder is removed once its ids are mapped (the maps stay readable)."""
    if in_cache:
        try:
            os.replace(folder, cache_dir() / key)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
        loaded = load(key)
    else:
        loaded = load_entry(folder)
        shutil.rmtree(folder, ignore_errors=True)
    if loaded is None:
        raise OSError(f"the token ids written to {folder} could not be read back")
    return loaded
