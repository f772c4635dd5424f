"""Splits of a corpus: which tokens of which document are train, validation or test."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Segment:
    """Tokens ``start:stop`` of document number ``document`` (a passage, a region, a tail)."""

    document: int
    start: int
    stop: int


@dataclass
class Split:
    """The token ids of one split as segments, each with its document's label and origin.

    ``places[i]`` is ``"document name:start-stop"`` in token positions: enough to
    check that no text appears in two splits. Prepared splits hold views of one
    memory-mapped array of ids (``flat``).
    """

    ids: list[np.ndarray] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    flat: np.ndarray | None = None  # every segment's ids end to end, when stored that way

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        return sum(len(a) for a in self.ids)

    def starts(self) -> np.ndarray:
        """Where each segment after the first begins in :meth:`concatenated` (empty
        segments skipped): the document boundaries a stream must not read across."""
        lengths = np.array([len(a) for a in self.ids], np.int64)
        ends = np.cumsum(lengths)
        starts = ends[:-1][lengths[1:] > 0]
        return np.unique(starts[starts > 0])

    def concatenated(self) -> np.ndarray:
        """Every segment's ids end to end, in corpus order (what a language model reads):
        the stored (memory-mapped) array itself when there is one, never a copy of it."""
        if self.flat is not None:
            return self.flat
        return np.concatenate(self.ids) if self.ids else np.zeros(0, np.int32)


def tail_split(lengths: list[int], validation_fraction: float) -> dict[str, list[Segment]]:
    """Hold out the last ``validation_fraction`` of every document for validation."""
    plan = {"train": [], "validation": []}
    for d, n in enumerate(lengths):
        cut = n - int(round(n * validation_fraction))
        plan["train"].append(Segment(d, 0, cut))
        if cut < n:
            plan["validation"].append(Segment(d, cut, n))
    return plan


def document_folds(labels: list, folds: int, seed: int = 1) -> list[int]:
    """Deal documents (given by their authors' ``labels``) into ``folds`` folds for
    cross-validation: each author's documents in a random order, dealt one per fold
    in turn, the turn carried on from author to author so the folds differ in size by
    at most one document. An author with n documents has them in min(n, folds)
    different folds, so with 2 or more folds every fold trains on at least one
    document of every author that has two. Returns each document's fold."""
    rng = np.random.default_rng([seed, folds])
    fold_of = [0] * len(labels)
    turn = 0
    for label in sorted(set(labels), key=str):
        mine = [d for d, other in enumerate(labels) if other == label]
        for d in (mine[i] for i in rng.permutation(len(mine))):
            fold_of[d] = turn % folds
            turn += 1
    return fold_of
