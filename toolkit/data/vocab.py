"""The vocabulary: token <-> id, with padding id 0 and out-of-vocabulary id 1."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PAD, OOV = 0, 1
PAD_TOKEN, OOV_TOKEN = "<pad>", "<unk>"


def code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as one array (no Python object per character)."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


class Vocabulary:
    """Maps tokens to ids. Ids 0 and 1 are reserved for padding and unknown tokens."""

    kind = "tokens"

    def __init__(self, tokens: Sequence[str]):
        self.tokens = [PAD_TOKEN, OOV_TOKEN, *tokens]
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    @classmethod
    def fit(cls, tokens: Iterable[str], min_count: int = 1, max_size: int = 0) -> "Vocabulary":
        """Most frequent first (ties in code-point order); ``max_size`` counts real tokens only."""
        if isinstance(tokens, str):  # characters: count code points with numpy
            codes, freq = np.unique(code_points(tokens), return_counts=True)
            counts = dict(zip(map(chr, codes.tolist()), freq.tolist()))
        else:
            counts = Counter(tokens)
        return cls.from_counts(counts, min_count, max_size)

    @classmethod
    def from_counts(cls, counts: dict[str, int], min_count: int = 1,
                    max_size: int = 0) -> "Vocabulary":
        """:meth:`fit` from token counts already made (a corpus read in chunks)."""
        # Two stable sorts: by token, then by count, most frequent first.
        kept = sorted(sorted(t for t, c in counts.items() if c >= min_count),
                      key=counts.__getitem__, reverse=True)
        if max_size:
            kept = kept[:max_size]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        if isinstance(tokens, str) and self.character_table is not None:
            return self.encode_characters(tokens)
        get = self.ids.get
        return np.fromiter((get(t, OOV) for t in tokens), dtype=np.int32, count=len(tokens))

    @functools.cached_property
    def character_table(self) -> np.ndarray | None:
        """Code point -> id for a vocabulary of single characters (else ``None``)."""
        characters = self.tokens[2:]
        if not characters or any(len(t) != 1 for t in characters):
            return None
        codes = np.array([ord(t) for t in characters])
        table = np.full(codes.max() + 1, OOV, np.int32)
        table[codes] = np.arange(2, len(self.tokens), dtype=np.int32)
        return table

    def encode_characters(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters, in one vectorised lookup."""
        codes = code_points(text)
        table = self.character_table
        ids = np.full(len(codes), OOV, np.int32)
        known = codes < len(table)
        ids[known] = table[codes[known]]
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """Distinct tokens that would map to the out-of-vocabulary id, in order of appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.ids))

    def to_json(self) -> dict:
        return {"kind": self.kind, "pad_id": PAD, "oov_id": OOV, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        tokens = data["tokens"]
        if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError("not a toolkit vocabulary: ids 0 and 1 must be padding and unknown")
        kind = data.get("kind", "tokens")
        return (WordPieceVocabulary if kind == WordPieceVocabulary.kind else Vocabulary)(
            tokens[2:])

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


class WordPieceVocabulary(Vocabulary):
    """Subword ids: every token is split into WordPiece pieces (``"walking"`` ->
    ``"walk"``, ``"##ing"``) with keras-nlp's ``WordPieceTokenizer``.

    Fitted with ``keras_nlp.tokenizers.compute_word_piece_vocabulary``, it keeps every
    character seen in training as a piece, so generation never produces an unknown
    word and only characters never seen in training are unknown.
    """

    kind = "wordpiece"
    SUFFIX = "##"

    def __init__(self, tokens: Sequence[str]):
        super().__init__(tokens)
        self._tokenizer = None

    @classmethod
    def fit(cls, tokens: Iterable[str], min_count: int = 1,
            max_size: int = 0) -> "WordPieceVocabulary":
        from toolkit.backend import load_tensorflow

        load_tensorflow()
        import keras_nlp
        import tensorflow as tf

        words = np.array(list(tokens), dtype=object)
        data = tf.data.Dataset.from_tensor_slices(words.astype(str)).batch(4096)
        pieces = keras_nlp.tokenizers.compute_word_piece_vocabulary(
            data, vocabulary_size=(max_size or 8000) + 2, split=False,
            reserved_tokens=[PAD_TOKEN, OOV_TOKEN], suffix_indicator=cls.SUFFIX)
        return cls(pieces[2:])

    def tokenizer(self):
        if self._tokenizer is None:
            import keras_nlp

            self._tokenizer = keras_nlp.tokenizers.WordPieceTokenizer(
                vocabulary=self.tokens, oov_token=OOV_TOKEN, split=False, lowercase=False,
                strip_accents=False, suffix_indicator=self.SUFFIX, dtype="int32")
        return self._tokenizer

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        if len(tokens) == 0:
            return np.zeros(0, np.int32)
        from toolkit.backend import load_tensorflow

        load_tensorflow()
        import tensorflow as tf

        pieces = self.tokenizer().tokenize(tf.constant(list(tokens), dtype=tf.string))
        pieces = np.asarray(getattr(pieces, "flat_values", pieces))  # ragged, or flattened
        if pieces.dtype == object:
            pieces = np.concatenate(pieces)
        return pieces.astype(np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Pieces merged back into tokens (``"walk"``, ``"##ing"`` -> ``"walking"``)."""
        words: list[str] = []
        for piece in super().decode(ids):
            if piece.startswith(self.SUFFIX) and words:
                words[-1] += piece[len(self.SUFFIX):]
            else:
                words.append(piece)
        return words

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        distinct = list(dict.fromkeys(tokens))
        return [t for t in distinct if OOV in self.encode([t])]
