"""How sure an attribution is: score normalisation, temperature scaling, pooling,
stacking with the n-gram model, and the "none of these authors" rule.

Everything here works on score matrices ``(passages, authors)`` (a head's
log-scores, see :meth:`~toolkit.hookspecs.Head.score_passages`) and is fitted on the
validation split only, so the test split stays unseen:

- **offsets** (per-author language models): a head that gives every text a high
  likelihood (a big author's, or a simple style's) would win too often; each
  author's mean validation score per token, times the passage's tokens, is
  subtracted (Bagnall's normalisation), where that lowers the validation
  negative log-likelihood.
- **temperature**: the normalised scores divided by one number ``T`` fitted to
  minimise the validation negative log-likelihood (Guo et al., 2017), so that a
  passage given 0.8 is right about 80 % of the time (fitted to Platt's targets,
  :func:`fitting_nll`, so it stays finite where validation is perfectly
  separated). With enough validation passages
  (``BIAS_MIN_PASSAGES`` per author) a bias per author is fitted with it, every
  author's passages weighing the same (bias-corrected temperature scaling).
- **pooling**: a document's answer is the mean of its passages' calibrated
  log-probabilities (a geometric mean of the passage probabilities), softmaxed again:
  as sure as a typical passage, where summing would multiply correlated evidence.
- **rejection**: below a threshold on the top answer's log-odds (``log(p / (1 - p))``
  of the top probability ``p``: the same order as ``p``, without ``p`` rounding to 1.0
  for long passages) the answer is ``unknown``. The threshold is fitted by holding
  each author out in turn: that author's validation passages play texts by a stranger
  (scored over the other authors only), the rest known texts, and the threshold that
  best separates them (balanced accuracy) is kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

UNKNOWN = "unknown"
# The log-odds of the largest probability below 1.0 in floating point: an old threshold
# of 1.0 ("unknown unless the top probability rounds to 1.0") reads as this.
SURE_LOG_ODDS = 53 * math.log(2)
# Per-author biases are fitted only with at least this many validation passages per author.
BIAS_MIN_PASSAGES = 20


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_log_odds(log_probs: np.ndarray) -> np.ndarray:
    """The log-odds ``log p - log(1 - p)`` of each row's top probability ``p``, from
    log-probabilities: exact where ``p`` itself would round to 1.0."""
    top = log_probs.argmax(axis=1)
    rows = np.arange(len(log_probs))
    others = log_probs.copy()
    others[rows, top] = -np.inf
    peak = others.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # every other answer impossible: inf - inf
        rest = peak[:, 0] + np.log(np.exp(others - peak).sum(axis=1))
    return np.where(np.isneginf(peak[:, 0]), np.inf, log_probs[rows, top] - rest)


def probability_of(log_odds: float | None) -> float:
    """The top probability with these log-odds (0 for ``None``, "never unknown")."""
    if log_odds is None:
        return 0.0
    if log_odds < 0:  # no overflow either way
        return math.exp(log_odds) / (1.0 + math.exp(log_odds))
    return 1.0 / (1.0 + math.exp(-log_odds))


def nll(log_probs: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None,
        smoothing: float = 0.0) -> float:
    """Mean negative log-likelihood of the true labels (weighted by ``weights``); with
    ``smoothing`` the cross-entropy against targets that give the true author
    ``1 - smoothing`` and share ``smoothing`` among the others."""
    true = log_probs[np.arange(len(labels)), labels]
    if smoothing:
        others = (log_probs.sum(axis=1) - true) / max(log_probs.shape[1] - 1, 1)
        true = (1 - smoothing) * true + smoothing * others
    return float(np.average(-true, weights=weights))


def fitting_nll(log_probs: np.ndarray, labels: np.ndarray,
                weights: np.ndarray | None = None) -> float:
    """The loss temperatures, biases and stacking weights are fitted to: the NLL against
    Platt's targets (the true author ``(n + 1) / (n + 2)`` for ``n`` passages), which has
    a finite optimum even where validation is perfectly separated (the plain NLL then
    drives the temperature to 0 and every probability to 1)."""
    return nll(log_probs, labels, weights, smoothing=1.0 / (len(labels) + 2))


def balanced(labels: np.ndarray) -> np.ndarray:
    """Weights that give every author's passages the same total (scikit-learn's "balanced")."""
    classes, counts = np.unique(labels, return_counts=True)
    per_class = dict(zip(classes, len(labels) / (len(classes) * counts)))
    return np.array([per_class[label] for label in labels])


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on ``labels``."""
    from scipy.optimize import minimize_scalar

    if not len(labels):
        return 1.0
    result = minimize_scalar(lambda t: fitting_nll(log_softmax(logits / np.exp(t)), labels),
                             bounds=(-6.0, 9.0), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 15) -> float:
    """ECE: the |accuracy - confidence| gap of the top answer, averaged over ``bins``
    equal-width confidence bins weighted by their share of the passages."""
    if not len(labels):
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> list:
    """Per confidence bin: (mean confidence, accuracy, passages), for the diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [(float(confidence[which == b].mean()), float(correct[which == b].mean()),
             int((which == b).sum())) for b in range(bins) if (which == b).any()]


def pool(log_probs: np.ndarray, groups: list) -> tuple[list, np.ndarray]:
    """Documents' log-probabilities: the mean of their passages' rows, renormalised.
    Returns the groups in first-seen order and one row per group."""
    order = list(dict.fromkeys(groups))
    index = {g: i for i, g in enumerate(order)}
    sums = np.zeros((len(order), log_probs.shape[1]))
    counts = np.zeros(len(order))
    for row, group in zip(log_probs, groups):
        sums[index[group]] += row
        counts[index[group]] += 1
    return order, log_softmax(sums / counts[:, None])


def held_out_confidences(log_probs: np.ndarray, labels: np.ndarray):
    """The top answer's log-odds with each author held out in turn, as a model of the
    other authors would give them: every passage is scored over the other authors
    (renormalised), the held-out author's passages as strangers' (``unknown = True``),
    the others' as known authors'. Returns the confidences and ``unknown``."""
    authors = log_probs.shape[1]
    confidence, unknown = [], []
    for a in range(authors):
        others = [b for b in range(authors) if b != a]
        if not (labels == a).any() or len(others) < 2:
            continue
        confidence.append(top_log_odds(log_softmax(log_probs[:, others])))
        unknown.append(labels == a)
    if not confidence:
        return np.zeros(0), np.zeros(0, bool)
    return np.concatenate(confidence), np.concatenate(unknown)


def simulated_strangers(log_probs: np.ndarray, labels: np.ndarray):
    """Known texts as they are, beside the same texts as strangers would be scored: the
    top answer's log-odds over every author (``unknown = False``), and with each text's
    own author removed and the rest renormalised (``unknown = True``). Unlike
    :func:`held_out_confidences` the known side is exactly what ``attribute`` sees;
    a real stranger faces one candidate more, so the simulated ones are if anything
    more confident than real ones. Returns the confidences and ``unknown``."""
    authors = log_probs.shape[1]
    if authors < 3:
        return np.zeros(0), np.zeros(0, bool)
    strangers = []
    for a in range(authors):
        mine = labels == a
        if mine.any():
            others = [b for b in range(authors) if b != a]
            strangers.append(top_log_odds(log_softmax(log_probs[mine][:, others])))
    confidence = np.concatenate([top_log_odds(log_probs), *strangers])
    return confidence, np.r_[np.zeros(len(log_probs), bool), np.ones(len(confidence) - len(log_probs), bool)]


def fit_threshold(confidence: np.ndarray, unknown: np.ndarray) -> float | None:
    """The confidence threshold with the best balanced accuracy at telling known texts
    (at or above it) from strangers' (below it); ``None`` (accept everything) unless a
    threshold does better than that."""
    if unknown.all() or not unknown.any():
        return None
    order = np.argsort(confidence, kind="stable")
    ranked, strange = confidence[order], unknown[order]
    # Threshold at ranked[i]: everything before i is rejected.
    rejected_strangers = np.concatenate([[0], np.cumsum(strange)])[:-1]
    rejected_known = np.concatenate([[0], np.cumsum(~strange)])[:-1]
    first = np.r_[True, ranked[1:] != ranked[:-1]]  # ties: reject all or none of them
    score = ((1 - rejected_known / (~strange).sum()) + rejected_strangers / strange.sum()) / 2
    score = np.where(first, score, -1.0)
    best = int(np.argmax(score))
    return float(ranked[best]) if score[best] > 0.5 else None


def unseen_author_auroc(log_probs: np.ndarray, labels: np.ndarray) -> dict:
    """How well the top answer's log-odds separate known authors' passages from strangers'
    (see :func:`held_out_confidences`): the AUROC over the ``pairs`` of passages and roles."""
    from sklearn.metrics import roc_auc_score

    if log_probs.shape[1] < 3:
        return {"auroc": None, "why": "needs 3 or more authors: with one held out, a "
                                      "single candidate is always sure"}
    confidence, unknown = held_out_confidences(log_probs, labels)
    if unknown.all() or not unknown.any():
        return {"auroc": None}
    return {"auroc": round(float(roc_auc_score(~unknown, confidence)), 4),
            "pairs": int(len(unknown))}


def stranger_separation(known: np.ndarray, known_documents: list, strangers: np.ndarray,
                        stranger_documents: list, threshold: float | None) -> dict:
    """How well the top answer's log-odds tell texts of the run's own authors (``known``
    log-probabilities) from texts of authors it never trained on (``strangers``): the
    AUROC over passages and over documents (passages pooled, as ``attribute`` pools a
    file's), and the share of each answered ``unknown`` below the log-odds
    ``threshold`` (``None``: never)."""
    from sklearn.metrics import roc_auc_score

    below = -np.inf if threshold is None else threshold

    def separation(known_top, stranger_top):
        is_known = np.r_[np.ones(len(known_top), bool), np.zeros(len(stranger_top), bool)]
        return {"auroc": round(float(roc_auc_score(is_known, np.r_[known_top, stranger_top])), 4),
                "strangers_unknown": round(float((stranger_top < below).mean()), 4),
                "known_unknown": round(float((known_top < below).mean()), 4)}

    report = {"unknown_below": threshold,
              "passages": separation(top_log_odds(known), top_log_odds(strangers))}
    if known_documents and stranger_documents:
        _, pooled_known = pool(known, known_documents)
        _, pooled_strangers = pool(strangers, stranger_documents)
        report["documents"] = separation(top_log_odds(pooled_known),
                                         top_log_odds(pooled_strangers))
        report["documents"]["count"] = [len(pooled_known), len(pooled_strangers)]
    return report


@dataclass
class Calibration:
    """Per-author offsets (per token), a temperature and a rejection threshold (the top
    answer's log-odds below which the answer is ``unknown``; ``None``: never), fitted
    on validation."""

    offsets: list[float]
    temperature: float = 1.0
    unknown_below: float | None = None
    fitted_on: dict = field(default_factory=dict)
    biases: list[float] | None = None

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, normalise: str | bool,
            tokens: np.ndarray | None = None) -> "Calibration":
        """Fit on validation scores and labels. Per-author offsets (for per-author language
        models, whose scores are sums over tokens: each author's mean score per token
        times the passage's ``tokens``) are subtracted when ``normalise = "yes"``, never
        with ``"no"``, and with ``"auto"`` (or ``True``) only if they lower the validation
        negative log-likelihood (``fitted_on["nll"]``: without, with)."""
        tokens = np.ones(len(scores)) if tokens is None else np.asarray(tokens, float)
        normalise = {True: "auto", False: "no"}.get(normalise, normalise)
        candidates = []
        if normalise != "yes" or not len(scores):
            candidates.append(np.zeros(scores.shape[1]))
        if normalise != "no" and len(scores):
            candidates.append((scores / np.maximum(tokens, 1)[:, None]).mean(axis=0))
        fitted = []
        for offsets in candidates:
            calibration = cls([float(o) for o in offsets])
            calibration.temperature = fit_temperature(calibration.centred(scores, tokens), labels)
            fitted.append((nll(calibration.log_probs(scores, tokens), labels)
                           if len(labels) else 0.0, calibration))
        # The offsets are kept only where they pay: a lower validation NLL once each
        # candidate has its own temperature.
        best = min(range(len(fitted)), key=lambda i: fitted[i][0])
        calibration = fitted[best][1]
        if len(labels) >= BIAS_MIN_PASSAGES * scores.shape[1]:
            calibration.fit_biases(calibration.centred(scores, tokens), labels)
        log_probs = calibration.log_probs(scores, tokens)
        # With two authors, holding one out leaves one candidate, always sure: no rule.
        if scores.shape[1] > 2:
            calibration.unknown_below = fit_threshold(*held_out_confidences(log_probs, labels))
        calibration.fitted_on = {"passages": int(len(labels)),
                                 "normalised": bool(np.any(calibration.offsets)),
                                 "normalise": normalise,
                                 "nll": [round(n, 4) for n, _ in fitted]}
        return calibration

    def fit_biases(self, centred: np.ndarray, labels: np.ndarray) -> None:
        """Per-author biases and the temperature, fitted together to minimise the validation
        NLL with every author's passages weighing the same in all (bias-corrected
        temperature scaling): an author whose head under-scores its own texts (one with
        little training text) is no longer always outvoted."""
        from scipy.optimize import minimize

        authors, weights = centred.shape[1], balanced(labels)

        def loss(x):
            return fitting_nll(log_softmax((centred - x[:authors]) / np.exp(x[authors])),
                               labels, weights)

        start = np.r_[np.zeros(authors), np.log(self.temperature)]
        result = minimize(loss, start, method="L-BFGS-B")
        biases = result.x[:authors] - result.x[:authors].mean()  # only differences matter
        self.biases = [float(b) for b in biases]
        self.temperature = float(np.exp(result.x[authors]))

    def centred(self, scores: np.ndarray, tokens: np.ndarray | None = None) -> np.ndarray:
        tokens = np.ones(len(scores)) if tokens is None else np.asarray(tokens, float)
        return scores - np.asarray(self.offsets)[None, :] * tokens[:, None]

    def log_probs(self, scores: np.ndarray, tokens: np.ndarray | None = None) -> np.ndarray:
        """Calibrated log-probabilities of raw head scores of passages of ``tokens`` tokens."""
        biases = np.zeros(scores.shape[1]) if self.biases is None else np.asarray(self.biases)
        return log_softmax((self.centred(scores, tokens) - biases) / self.temperature)

    def is_unknown(self, log_probs: np.ndarray) -> np.ndarray:
        """Whether each row's top answer falls below the threshold (``unknown``)."""
        if self.unknown_below is None:
            return np.zeros(len(log_probs), bool)
        return top_log_odds(log_probs) < self.unknown_below

    def to_json(self) -> dict:
        return {**asdict(self), "unknown_below_probability": probability_of(self.unknown_below)}

    @classmethod
    def read(cls, path: Path) -> "Calibration | None":
        if not path.is_file():
            return None
        stored = json.loads(path.read_text())
        stored.pop("unknown_below_probability", None)  # written for people to read
        if "threshold" in stored:  # written before the threshold was in log-odds
            p = stored.pop("threshold")
            stored["unknown_below"] = (None if p <= 0 else SURE_LOG_ODDS if p >= 1
                                       else math.log(p) - math.log1p(-p))
        return cls(**stored)


def fit_stack(parts: list[np.ndarray], labels: np.ndarray) -> list[float]:
    """Non-negative weights for a weighted sum of models' log-probabilities (a product of
    experts), minimising the validation NLL (:func:`fitting_nll`) of its softmax with
    every author's passages weighing the same in all (so a small author counts as much
    as a big one). Two or three numbers: little to overfit on a small validation split."""
    from scipy.optimize import minimize

    weights = balanced(labels)

    def loss(log_w):
        return fitting_nll(log_softmax(sum(np.exp(w) * p for w, p in zip(log_w, parts))),
                           labels, weights)

    result = minimize(loss, np.zeros(len(parts)), method="L-BFGS-B",
                      bounds=[(-7.0, 4.0)] * len(parts))
    return [float(w) for w in np.exp(result.x)]


def stacked(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    return log_softmax(sum(w * p for w, p in zip(weights, parts)))
