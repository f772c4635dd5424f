"""How sure a figure is: bootstrap intervals that resample documents, paired differences
between two models and McNemar's exact test.

Passages of one document are not independent (one speech's passages share its topic,
year and audience), so every interval resamples whole documents with replacement and
takes all of a drawn document's passages, as many times as it was drawn (a cluster
bootstrap). Two models are compared on the same resamples (a paired bootstrap), so the
interval of their difference is much narrower than the two intervals side by side.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

ROUNDS = 2000  # bootstrap resamples: the interval's ends move by about 0.005 between seeds
LEVEL = 0.95


def document_resamples(documents: int, rounds: int = ROUNDS, seed: int = 0) -> np.ndarray:
    """How often each of ``documents`` documents is drawn in each resample:
    ``(rounds, documents)`` counts, every row summing to ``documents``."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(documents, np.full(documents, 1.0 / documents), size=rounds)


def interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """The percentile interval holding the middle ``level`` of ``values``."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def weighted_accuracy(correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accuracy of ``correct`` (items,) under each row of ``weights`` (rounds, items)."""
    return weights @ correct.astype(float) / np.maximum(weights.sum(axis=-1), 1e-12)


def per_document(values: np.ndarray, passage_documents: np.ndarray, documents: int) -> np.ndarray:
    """``values`` of passages summed per document: ``(documents,)`` or ``(documents, k)``."""
    values = np.asarray(values, float)
    if values.ndim == 1:
        return np.bincount(passage_documents, values, minlength=documents)
    return np.stack([np.bincount(passage_documents, v, minlength=documents) for v in values.T],
                    axis=1)


def passage_accuracy(correct: np.ndarray, passage_documents: np.ndarray,
                     resamples: np.ndarray) -> np.ndarray:
    """Passage accuracy in each resample of documents (a drawn document brings all its
    passages, as often as it was drawn), from per-document counts."""
    documents = resamples.shape[1]
    hits = per_document(correct, passage_documents, documents)
    sizes = per_document(np.ones(len(correct)), passage_documents, documents)
    return (resamples @ hits) / np.maximum(resamples @ sizes, 1e-12)


def macro_f1(true: np.ndarray, predicted: np.ndarray, classes: int,
             passage_documents: np.ndarray | None = None,
             resamples: np.ndarray | None = None) -> np.ndarray:
    """Macro-F1 of the whole sample (no ``resamples``: one value) or in each resample of
    documents: the mean F1 over the authors true or predicted in that sample
    (scikit-learn's macro average over the labels present)."""
    if resamples is None:
        passage_documents, resamples = np.zeros(len(true), int), np.ones((1, 1))
    documents = resamples.shape[1]
    onehot = np.eye(classes)
    is_true, is_predicted = onehot[true], onehot[predicted]
    hits = resamples @ per_document(is_true * is_predicted, passage_documents, documents)
    size = (resamples @ per_document(is_true, passage_documents, documents)
            + resamples @ per_document(is_predicted, passage_documents, documents))
    present = size > 0
    f1 = np.where(present, 2 * hits / np.maximum(size, 1e-12), 0.0)
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def figures(true: np.ndarray, predicted: np.ndarray, passage_documents: np.ndarray,
            document_true: np.ndarray, document_predicted: np.ndarray, classes: int,
            resamples: np.ndarray) -> dict:
    """Accuracy and macro-F1 over passages and over documents, each with its interval
    over the same document ``resamples``. ``passage_documents[i]`` is the index of
    passage ``i``'s document in ``document_true``."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    each = np.arange(len(document_true))
    return {
        "accuracy": round(float(np.mean(true == predicted)) if len(true) else 0.0, 4),
        "accuracy_ci": interval(passage_accuracy(true == predicted, passage_documents,
                                                 resamples)),
        "macro_f1": round(float(macro_f1(true, predicted, classes)[0]), 4),
        "macro_f1_ci": interval(macro_f1(true, predicted, classes, passage_documents,
                                         resamples)),
        "documents": {
            "count": int(len(document_true)),
            "accuracy": round(float(np.mean(document_true == document_predicted)), 4),
            "accuracy_ci": interval(weighted_accuracy(document_true == document_predicted,
                                                      resamples)),
            "macro_f1": round(float(macro_f1(document_true, document_predicted, classes)[0]),
                              4),
            "macro_f1_ci": interval(macro_f1(document_true, document_predicted, classes,
                                             each, resamples)),
        },
    }


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's exact test of two models' answers on the same items: ``a_only`` items
    only model A gets right, ``b_only`` only B; ``p`` is the two-sided binomial
    probability of a split at least this uneven if both were equally good."""
    a_only = int(np.sum(a_correct & ~b_correct))
    b_only = int(np.sum(~a_correct & b_correct))
    n, k = a_only + b_only, min(a_only, b_only)
    # exact in integers: 2.0 ** n overflows a float from n = 1024 on
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n)
    return {"a_only": a_only, "b_only": b_only, "p": round(float(min(1, 2 * tail)), 6)}


def paired_difference(a: dict, b: dict, passage_documents: np.ndarray,
                      resamples: np.ndarray) -> dict:
    """Model A minus model B on the same passages and documents: the difference in
    passage accuracy and in document accuracy, each with its paired bootstrap interval,
    and McNemar's exact test on documents. ``a`` and ``b`` hold boolean ``correct``
    (passages) and ``document_correct`` arrays."""
    passages = (passage_accuracy(a["correct"], passage_documents, resamples)
                - passage_accuracy(b["correct"], passage_documents, resamples))
    documents = (weighted_accuracy(a["document_correct"], resamples)
                 - weighted_accuracy(b["document_correct"], resamples))
    return {
        "accuracy": round(float(a["correct"].mean() - b["correct"].mean()), 4),
        "accuracy_ci": interval(passages),
        "document_accuracy": round(float(a["document_correct"].mean()
                                         - b["document_correct"].mean()), 4),
        "document_accuracy_ci": interval(documents),
        "mcnemar_documents": mcnemar_exact(a["document_correct"], b["document_correct"]),
    }


def verdict(difference: dict, alpha: float = 0.05) -> str:
    """``better`` or ``worse`` where the paired document-accuracy interval lies wholly
    above or below zero and McNemar's test agrees (p < ``alpha``); else ``no clear
    difference``. The percentile interval alone is too narrow on a few documents."""
    low, high = difference["document_accuracy_ci"]
    significant = difference["mcnemar_documents"]["p"] < alpha
    if low > 0 and significant:
        return "better"
    if high < 0 and significant:
        return "worse"
    return "no clear difference"
