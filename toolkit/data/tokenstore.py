"""Tokens on disk while a corpus is read: what lets a corpus bigger than memory be prepared.

Each document is tokenized once, as it is read, and its tokens are appended to a file
as provisional ids: a character's code point, or a word's index in order of first
appearance. Nothing else of the document is kept. The split plan, the vocabulary
counts and the final encoding then read the file back in chunks with plain reads (a
memory map would leave every page it touched resident in the process).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.data.vocab import OOV, Vocabulary, code_points

CHUNK = 1 << 22  # tokens per read or write: 16 MB of provisional ids
PROVISIONAL = np.dtype("<u4")


class TokenStore:
    """Every document's tokens as provisional ids in one file, in corpus order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.file = open(self.path, "w+b")
        self.lengths: list[int] = []
        self.offsets: list[int] = []
        self.characters: bool | None = None  # decided by the first document with tokens
        self.words: dict[str, int] = {}
        self.word_list: list[str] = []
        self.max_code = -1

    @property
    def size(self) -> int:
        """One more than the largest provisional id."""
        return self.max_code + 1 if self.characters else len(self.word_list)

    def add(self, tokens) -> int:
        """Append one document's tokens (a ``str`` of characters or a list); its length."""
        if self.characters is None and len(tokens):
            self.characters = isinstance(tokens, str)
        self.offsets.append(sum(self.lengths))
        written = 0
        for start in range(0, len(tokens), CHUNK):
            part = tokens[start:start + CHUNK]
            ids = self.provisional(part)
            self.file.write(ids.astype(PROVISIONAL).tobytes())
            written += len(ids)
        self.lengths.append(written)
        return written

    def provisional(self, tokens) -> np.ndarray:
        if self.characters:
            if not isinstance(tokens, str):
                if any(len(t) != 1 for t in tokens):
                    raise ToolkitError("the preprocessor gave characters for one document "
                                       "and longer tokens for another")
                tokens = "".join(tokens)
            ids = code_points(tokens)
            if len(ids):
                self.max_code = max(self.max_code, int(ids.max()))
            return ids
        # New words are numbered in order of first appearance, one dictionary step per
        # distinct word; the tokens then take their numbers in one array lookup.
        if not isinstance(tokens, NumberedTokens):
            tokens = NumberedTokens.of(tokens)
        index = self.words
        new = [word for word in tokens.types if word not in index]
        index.update(zip(new, range(len(index), len(index) + len(new))))
        self.word_list.extend(new)
        return lookup(index, tokens.types)[tokens.ids]

    def read(self, document: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Provisional ids ``start:stop`` of ``document``, read from the file."""
        length = self.lengths[document]
        stop = length if stop is None else min(stop, length)
        if stop <= start:
            return np.zeros(0, PROVISIONAL)
        self.file.flush()
        self.file.seek((self.offsets[document] + start) * PROVISIONAL.itemsize)
        return np.fromfile(self.file, PROVISIONAL, stop - start)

    def chunks(self, document: int, start: int = 0, stop: int | None = None):
        """:meth:`read` in pieces of at most ``CHUNK`` ids."""
        stop = self.lengths[document] if stop is None else stop
        for a in range(start, stop, CHUNK):
            yield self.read(document, a, min(a + CHUNK, stop))

    def decode(self, ids: np.ndarray):
        """Provisional ids back to tokens: a ``str`` of characters, or a list of words."""
        if self.characters:
            return ids.astype(PROVISIONAL).tobytes().decode("utf-32-le")
        words = self.word_list
        return [words[i] for i in ids.tolist()]

    def tokens(self, document: int) -> "StoredTokens":
        return StoredTokens(self, document)

    def counts(self, segments) -> dict[str, int]:
        """How often each token occurs in ``segments`` (``Segment``s of the plan)."""
        total = np.zeros(self.size, np.int64)
        for s in segments:
            for ids in self.chunks(s.document, s.start, s.stop):
                total += np.bincount(ids, minlength=self.size)[:self.size]
        present = np.flatnonzero(total)
        tokens = self.decode(present)
        return dict(zip(tokens, total[present].tolist()))

    def table(self, vocab: Vocabulary) -> np.ndarray:
        """Provisional id -> the vocabulary's id (``OOV`` for tokens it lacks)."""
        if self.characters:
            table = np.full(self.size, OOV, np.int64)
            known = vocab.character_table
            if known is not None:
                n = min(len(known), self.size)
                table[:n] = known[:n]
            return table
        return np.array([vocab.ids.get(word, OOV) for word in self.word_list], np.int64)

    def close(self, remove: bool = True) -> None:
        self.file.close()
        if remove:
            self.path.unlink(missing_ok=True)


def lookup(index: dict[str, int], tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(index.__getitem__, tokens), PROVISIONAL, len(tokens))


class NumberedTokens(Sequence):
    """Tokens as their distinct values (``types``, in order of first appearance) and, per
    token, an index into them (``ids``): how worker processes send a document's words
    back, a few thousand strings and one array to pickle instead of a string per token.
    A slice is a ``NumberedTokens`` too."""

    def __init__(self, types: list[str], ids: np.ndarray):
        self.types, self.ids = types, ids

    @classmethod
    def of(cls, tokens: Sequence[str]) -> "NumberedTokens":
        types = list(dict.fromkeys(tokens))
        return cls(types, lookup(dict(zip(types, range(len(types)))), tokens))

    @classmethod
    def joined(cls, parts: Sequence["NumberedTokens"]) -> "NumberedTokens":
        """The tokens of ``parts`` one after the other."""
        types = list(dict.fromkeys(chain.from_iterable(part.types for part in parts)))
        index = dict(zip(types, range(len(types))))
        ids = [lookup(index, part.types)[part.ids] for part in parts]
        return cls(types, np.concatenate(ids) if ids else np.zeros(0, PROVISIONAL))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return NumberedTokens(self.types, self.ids[index])
        return self.types[self.ids[index]]

    def __iter__(self):
        types = self.types
        return (types[i] for i in self.ids.tolist())


class StoredTokens(Sequence):
    """One stored document's tokens as a sequence, decoded from the file only when read."""

    def __init__(self, store: TokenStore, document: int):
        self.store, self.document = store, document

    def __len__(self) -> int:
        return self.store.lengths[self.document]

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            tokens = self.store.decode(self.store.read(self.document, start, stop))
            return tokens if step == 1 else tokens[::step]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.store.decode(self.store.read(self.document, index, index + 1))[0]

    def __iter__(self):
        for ids in self.store.chunks(self.document):
            yield from self.store.decode(ids)


def smallest_id_type(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id of the vocabulary."""
    for kind in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(kind).max + 1:
            return np.dtype(kind)
    raise ToolkitError(f"a vocabulary of {vocab_size} tokens is too large")

