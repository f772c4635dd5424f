"""The classic stylometry baselines: Burrows' Delta and Cosine Delta.

As stylo's ``classify()`` sets them up by default: the relative frequencies of the
``mfw`` most frequent words of the training texts (100), z-scored with the training
texts' means and standard deviations; each author is the mean z-score vector of their
training texts, and a text goes to the nearest author. Burrows' Delta (2002) measures
nearness as the mean absolute difference of the z-scores; Cosine Delta (Smith and
Aldridge 2011) as one minus their cosine, which Evert et al. (2017) found the more
reliable of the two.

Distances become probabilities as every other model's scores do: ``softmax(-delta /
T)`` with the temperature ``T`` fitted on the validation passages, so the Deltas can be
pooled over a document's passages, calibrated and stacked in the ensemble.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

WORD = re.compile(r"[^\W\d_]+")  # runs of letters, as stylo's default tokenizer splits
DISTANCES = ("burrows", "cosine")
NAMES = {"burrows": "Burrows' Delta, 100 most frequent words",
         "cosine": "Cosine Delta, 100 most frequent words"}


def words(text: str) -> list[str]:
    """The lowercased words of a text (letters only: digits and punctuation split them)."""
    return WORD.findall(text.lower())


class Delta:
    """A Delta classifier fitted on labelled training texts (see the module's docstring)."""

    def __init__(self, distance: str = "burrows", mfw: int = 100):
        if distance not in DISTANCES:
            raise ValueError(f"distance: expected one of {DISTANCES}, received {distance!r}")
        self.distance, self.mfw = distance, mfw
        self.temperature = 1.0

    @property
    def name(self) -> str:
        return NAMES[self.distance] if self.mfw == 100 else \
            NAMES[self.distance].replace("100", str(self.mfw))

    def fit(self, texts: list[str], labels, authors: int) -> "Delta":
        """Choose the most frequent words, z-score the texts, average each author's."""
        counts = [Counter(words(text)) for text in texts]
        total = Counter()
        for c in counts:
            total.update(c)
        # Most frequent first; ties in alphabetical order so the choice never varies.
        self.vocabulary = [w for w, _ in sorted(total.items(), key=lambda x: (-x[1], x[0]))
                           ][:self.mfw]
        frequencies = self.frequencies(counts)
        self.mean = frequencies.mean(axis=0)
        spread = frequencies.std(axis=0, ddof=1) if len(texts) > 1 else np.zeros(len(self.mean))
        self.std = np.where(spread > 0, spread, np.inf)  # a constant word tells nothing
        z = self.z_scores(frequencies)
        labels = np.asarray(labels)
        self.centroids = np.full((authors, len(self.vocabulary)), np.nan)
        for a in range(authors):
            if (labels == a).any():
                self.centroids[a] = z[labels == a].mean(axis=0)
        return self

    def frequencies(self, counts: list[Counter]) -> np.ndarray:
        """Relative frequencies ``(texts, words)`` of the chosen words among all words."""
        index = {w: i for i, w in enumerate(self.vocabulary)}
        matrix = np.zeros((len(counts), len(self.vocabulary)))
        for row, c in enumerate(counts):
            for word, n in c.items():
                if word in index:
                    matrix[row, index[word]] = n
            matrix[row] /= max(sum(c.values()), 1)
        return matrix

    def z_scores(self, frequencies: np.ndarray) -> np.ndarray:
        return (frequencies - self.mean) / self.std

    def distances(self, texts: list[str]) -> np.ndarray:
        """Each text's Delta to each author ``(texts, authors)``; ``inf`` for an author
        without training texts."""
        z = self.z_scores(self.frequencies([Counter(words(t)) for t in texts]))
        if self.distance == "burrows":
            d = np.abs(z[:, None, :] - self.centroids[None, :, :]).mean(axis=2)
        else:
            norms = (np.linalg.norm(z, axis=1)[:, None]
                     * np.linalg.norm(self.centroids, axis=1)[None, :])
            d = 1.0 - (z @ np.nan_to_num(self.centroids).T) / np.maximum(norms, 1e-12)
        return np.where(np.isnan(d), np.inf, d)

    def fit_temperature(self, texts: list[str], labels) -> "Delta":
        """The temperature that makes ``softmax(-delta / T)`` best calibrated on ``texts``."""
        from toolkit.attribution.calibration import fit_temperature

        if len(texts):
            d = self.distances(texts)
            self.temperature = fit_temperature(-np.where(np.isinf(d), 1e6, d),
                                               np.asarray(labels))
        return self

    def log_probs(self, texts: list[str]) -> np.ndarray:
        """Log-probabilities ``(texts, authors)``: ``log_softmax(-delta / T)``."""
        from toolkit.attribution.calibration import log_softmax

        d = self.distances(texts)
        return log_softmax(-np.where(np.isinf(d), 1e6, d) / self.temperature)


def fit_delta(distance: str, train_texts: list[str], train_labels, validation_texts: list[str],
              validation_labels, authors: int, mfw: int = 100) -> Delta:
    """A :class:`Delta` fitted on the training passages, its temperature on validation."""
    return (Delta(distance, mfw).fit(train_texts, train_labels, authors)
            .fit_temperature(validation_texts, validation_labels))
