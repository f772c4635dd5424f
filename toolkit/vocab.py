"""The vocabulary: token <-> id, with padding id 0 and out-of-vocabulary id 1."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PAD, OOV = 0, 1
PAD_TOKEN, OOV_TOKEN = "<pad>", "<unk>"


class Vocabulary:
    """Maps tokens to ids. Ids 0 and 1 are reserved for padding and unknown tokens."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = [PAD_TOKEN, OOV_TOKEN, *tokens]
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    @classmethod
    def fit(cls, tokens: Iterable[str], min_count: int = 1, max_size: int = 0) -> "Vocabulary":
        """Most frequent first (ties in code-point order); ``max_size`` counts real tokens only."""
        counts = Counter(tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))
        if max_size:
            kept = kept[:max_size]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        get = self.ids.get
        return np.fromiter((get(t, OOV) for t in tokens), dtype=np.int32, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """Distinct tokens that would map to the out-of-vocabulary id, in order of appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.ids))

    def to_json(self) -> dict:
        return {"pad_id": PAD, "oov_id": OOV, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        tokens = data["tokens"]
        if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError("not a toolkit vocabulary: ids 0 and 1 must be padding and unknown")
        return cls(tokens[2:])

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
