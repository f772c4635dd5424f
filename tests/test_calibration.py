"""Calibration: temperature scaling, expected calibration error, pooling, stacking, "unknown"."""

import numpy as np
import pytest

from toolkit.attribution.calibration import (Calibration, expected_calibration_error, fit_stack,
                                 fit_temperature, fit_threshold, held_out_confidences,
                                 log_softmax, pool, stacked, stranger_separation,
                                 unseen_author_auroc)


def sampled(logits: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels drawn from softmax(logits): data for which those logits are calibrated."""
    rng = np.random.default_rng(seed)
    probabilities = np.exp(log_softmax(logits))
    return np.array([rng.choice(len(p), p=p) for p in probabilities])


def test_temperature_scaling_recovers_the_temperature_that_made_the_data():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=(4000, 5))
    labels = sampled(true_logits)
    overconfident = true_logits * 3.0
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.1)


def test_calibrated_probabilities_have_a_small_expected_error_and_overconfident_ones_not():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, size=(5000, 4))
    labels = sampled(logits, seed=3)
    assert expected_calibration_error(np.exp(log_softmax(logits)), labels) < 0.03
    assert expected_calibration_error(np.exp(log_softmax(logits * 4)), labels) > 0.1
    calibration = Calibration.fit(logits * 4, labels, normalise=False)
    after = np.exp(calibration.log_probs(logits * 4))
    assert expected_calibration_error(after, labels) < 0.03


def test_expected_calibration_error_by_hand():
    # Two passages at confidence 0.9 (one right) and two at 0.6 (both right):
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)


def test_per_author_offsets_remove_a_head_that_likes_every_text():
    # Author 2's head gives every passage 50 nats more: raw scores always pick it.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=300)
    scores = rng.normal(-1000, 1, size=(300, 3))
    scores[np.arange(300), labels] += 5
    scores[:, 2] += 50
    assert (scores.argmax(axis=1) == 2).all()
    calibration = Calibration.fit(scores, labels, normalise=True)
    assert (calibration.log_probs(scores).argmax(axis=1) == labels).mean() > 0.95


def test_pooling_averages_the_passages_of_each_document():
    log_probs = np.log(np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]))
    documents, pooled = pool(log_probs, ["a", "b", "a"])
    assert documents == ["a", "b"]
    geometric = np.sqrt(np.array([0.9 * 0.2, 0.1 * 0.8]))
    np.testing.assert_allclose(np.exp(pooled[0]), geometric / geometric.sum())
    np.testing.assert_allclose(np.exp(pooled[1]), [0.3, 0.7])


def test_stacking_weights_the_informative_model_and_ignores_noise():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=2000)
    informative = rng.normal(0, 1, size=(2000, 4))
    informative[np.arange(2000), labels] += 2
    noise = rng.normal(0, 3, size=(2000, 4))
    parts = [log_softmax(informative), log_softmax(noise)]
    weights = fit_stack(parts, labels)
    assert weights[0] > 0.5 and weights[1] < 0.1 * weights[0]
    assert (stacked(parts, weights).argmax(axis=1) == labels).mean() > 0.6


def test_the_unknown_threshold_separates_strangers_when_the_model_can():
    # A model sure of its authors' passages and unsure of everything else.
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(4), 50)
    logits = rng.normal(0, 0.3, size=(200, 4))
    logits[np.arange(200), labels] += 6
    confidence, unknown = held_out_confidences(log_softmax(logits), labels)
    assert unknown.sum() == 200 and len(unknown) == 800  # 4 folds of 200 passages
    threshold = fit_threshold(confidence, unknown)
    assert (confidence[unknown] < threshold).mean() > 0.9
    assert (confidence[~unknown] >= threshold).mean() > 0.9
    assert unseen_author_auroc(log_softmax(logits), labels)["auroc"] > 0.95


def test_no_unknown_rule_when_nothing_tells_strangers_apart():
    confidence = np.full(10, 0.7)
    assert fit_threshold(confidence, np.arange(10) < 5) is None
    two_authors = np.log(np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert Calibration.fit(two_authors, np.array([0, 1]), normalise=False).unknown_below is None


def test_in_each_fold_known_and_strangers_texts_are_scored_over_the_same_authors():
    log_probs = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    confidence, unknown = held_out_confidences(log_probs, np.array([0, 1]))
    # fold 0 (authors 1, 2): 0.3/0.5 stranger, 0.6/0.9 known; fold 1 (authors 0, 2):
    # 0.5/0.7 known, 0.3/0.4 stranger; as the top answer's log-odds, log(p / (1 - p))
    p = np.array([0.6, 2 / 3, 5 / 7, 0.75])
    np.testing.assert_allclose(confidence, np.log(p / (1 - p)))
    assert unknown.tolist() == [True, False, False, True]


def test_the_threshold_rejects_below_it_and_keeps_ties_together():
    confidence = np.array([0.2, 0.3, 0.3, 0.9, 0.8, 0.3])
    unknown = np.array([True, True, True, False, False, False])
    assert fit_threshold(confidence, unknown) == pytest.approx(0.8)


def test_offsets_are_per_token_so_short_passages_are_not_over_corrected():
    # Author 1's head finds every token 0.5 nats likelier; a passage's score sums tokens.
    rng = np.random.default_rng(7)
    tokens = rng.integers(20, 100, size=400)
    labels = rng.integers(0, 2, size=400)
    per_token = rng.normal(-2, 0.05, size=(400, 2))
    per_token[:, 1] += 0.5
    per_token[np.arange(400), labels] += 0.2
    scores = per_token * tokens[:, None]
    calibration = Calibration.fit(scores, labels, normalise=True, tokens=tokens)
    assert (calibration.log_probs(scores, tokens).argmax(axis=1) == labels).mean() > 0.95


def test_stacking_weights_also_act_as_a_temperature():
    # One model whose logits are 5 times too flat: its best weight is about 5.
    rng = np.random.default_rng(8)
    logits = rng.normal(0, 2, size=(3000, 4))
    labels = sampled(logits, seed=9)
    weights = fit_stack([log_softmax(logits / 5)], labels)
    assert weights[0] == pytest.approx(5, rel=0.15)


def test_author_biases_fitted_on_validation_give_a_small_author_its_texts_back():
    # Author 2 has few passages and a head that scores its own texts 5 nats too low.
    rng = np.random.default_rng(10)
    def data(n):
        labels = rng.choice(3, size=n, p=[0.48, 0.48, 0.04])
        scores = rng.normal(0, 1, size=(n, 3))
        scores[np.arange(n), labels] += 4
        scores[:, 2] -= 5
        return scores, labels
    validation, test = data(3000), data(3000)
    calibration = Calibration.fit(*validation, normalise=False)
    assert calibration.biases is not None
    recall = lambda log_probs, labels: (log_probs.argmax(1)[labels == 2] == 2).mean()
    assert recall(log_softmax(test[0]), test[1]) < 0.5
    assert recall(calibration.log_probs(test[0]), test[1]) > 0.8
    few = Calibration.fit(validation[0][:30], validation[1][:30], normalise=False)
    assert few.biases is None  # 30 passages for 3 authors: too few to fit biases


class Passages:
    """Labelled passages as the builders give them: ids (0 = padding), labels, sources."""

    def __init__(self, labels, tokens=20, documents=10):
        self.labels = np.asarray(labels)
        self.ids = np.ones((len(labels), tokens), np.int32)
        self.places = [f"doc{i % documents}-{label}:{i}-{i + 1}"
                        for i, label in enumerate(labels)]

    def __len__(self):
        return len(self.labels)


def lm_scores(labels, rng, tokens=20):
    """Per-author language-model scores (sums over tokens): the right head is a little
    likelier per token, and head 2 is likelier on every text (a generous head)."""
    per_token = np.full((len(labels), 3), -1.2) + rng.normal(0, 0.05, (len(labels), 3))
    per_token[np.arange(len(labels)), labels] += 0.2
    per_token[:, 2] += 0.5
    return per_token * tokens


def test_transductive_offsets_come_from_the_attributed_texts_and_never_their_labels():
    from toolkit.attribution.evaluate import transductive_report

    rng = np.random.default_rng(0)
    test_labels, val_labels = rng.integers(0, 3, 300), rng.integers(0, 3, 60)
    scores, val_scores = lm_scores(test_labels, rng), lm_scores(val_labels, rng)
    test, validation = Passages(test_labels), Passages(val_labels)
    report = transductive_report(scores, test, val_scores, validation, ["a", "b", "c"])
    np.testing.assert_allclose(report["offsets"], (scores / 20).mean(axis=0), atol=1e-5)
    raw_accuracy = float(np.mean(scores.argmax(axis=1) == test_labels))
    assert raw_accuracy < 0.4 and report["accuracy"] > 0.9  # head 2's generosity is gone
    shuffled = Passages(rng.permutation(test_labels))
    again = transductive_report(scores, shuffled, val_scores, validation, ["a", "b", "c"])
    assert again["offsets"] == report["offsets"]


def test_strangers_are_told_apart_by_how_sure_the_model_is_of_them():
    """Known authors' passages get peaked probabilities, strangers' flat ones: the AUROC
    is 1 at passage and document level, and the threshold answers "unknown" for every
    stranger and no known text; pooling makes a document as sure as a typical passage."""
    known = np.log(np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9],
                             [0.85, 0.1, 0.05]]))
    strangers = np.log(np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.35, 0.35, 0.3]]))
    threshold = np.log(0.6 / 0.4)  # a top probability of 0.6, in log-odds
    report = stranger_separation(known, ["a", "b", "c", "c"], strangers, ["s", "s", "t"],
                                 threshold)
    assert report["passages"] == {"auroc": 1.0, "strangers_unknown": 1.0, "known_unknown": 0.0}
    assert report["documents"]["auroc"] == 1.0 and report["documents"]["count"] == [3, 2]
    # Doubt about known texts and certainty about strangers' turn the AUROC over.
    flipped = stranger_separation(strangers, ["a", "b", "c"], known, ["s", "s", "t", "t"],
                                  threshold)
    assert flipped["passages"]["auroc"] == 0.0 and flipped["passages"]["known_unknown"] == 1.0
    half = stranger_separation(known, [], known[::-1], [], None)  # the same confidences
    assert half["passages"]["auroc"] == 0.5 and "documents" not in half
    assert half["passages"]["strangers_unknown"] == 0.0  # no threshold: never "unknown"


def test_the_top_log_odds_keep_ordering_texts_where_probabilities_round_to_one():
    """Long passages give author LMs score gaps of hundreds of nats: the top probability
    is 1.0 in floating point for all of them, its log-odds are still exact."""
    from toolkit.attribution.calibration import probability_of, top_log_odds

    log_probs = log_softmax(np.array([[0.0, -50.0, -60.0], [0.0, -300.0, -300.0],
                                      [0.0, -2.0, -2.0], [-1.0, 0.0, -1.0]]))
    assert (np.exp(log_probs[:2]).max(axis=1) == 1.0).all()
    odds = top_log_odds(log_probs)
    np.testing.assert_allclose(odds[1], 300 - np.log(2), rtol=1e-12)
    assert odds[0] == pytest.approx(50 - np.log1p(np.exp(-10)))
    p = np.exp(log_probs[2]).max()
    assert odds[2] == pytest.approx(np.log(p / (1 - p)))
    assert probability_of(odds[2]) == pytest.approx(p) and probability_of(None) == 0.0
    assert probability_of(-1000.0) == 0.0 and probability_of(1000.0) == 1.0
    calibration = Calibration([0.0, 0.0, 0.0], unknown_below=float(odds[2]) + 1e-9)
    assert calibration.is_unknown(log_probs).tolist() == [False, False, True, True]


def test_a_calibration_written_with_a_probability_threshold_reads_as_log_odds(tmp_path):
    """calibration.json files of runs trained before the log-odds rule still work."""
    import json

    path = tmp_path / "calibration.json"
    # top probabilities 0.75, 0.85, and 1 - 2**-60 (1.0 in floating point)
    log_probs = np.log(np.array([[0.75, 0.25], [0.85, 0.15], [1.0, 2.0 ** -60]]))
    for threshold, unknown in ((0.0, [False, False, False]), (0.8, [True, False, False]),
                               (1.0, [True, True, False])):
        path.write_text(json.dumps({"offsets": [0, 0], "temperature": 2.0,
                                    "threshold": threshold}))
        calibration = Calibration.read(path)
        assert calibration.is_unknown(log_probs).tolist() == unknown  # as the old rule said
        path.write_text(json.dumps(calibration.to_json(), allow_nan=False))
        assert Calibration.read(path) == calibration


def test_a_perfectly_separated_validation_split_gets_a_finite_temperature():
    """Every validation passage right by a wide margin: the plain NLL falls as the
    temperature goes to 0; the fit stops where the true author gets about (n + 1) /
    (n + 2), and a stack with a second model stays short of certainty too."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 40)
    scores = rng.normal(0, 5, size=(120, 3))
    scores[np.arange(120), labels] += 200  # author LMs' gaps of hundreds of nats
    temperature = fit_temperature(scores, labels)
    top = np.exp(log_softmax(scores / temperature)).max(axis=1)
    assert 10 < temperature < 200
    assert 0.97 < np.median(top) < 0.9999  # near 121/122, not 1.0
    calibration = Calibration.fit(scores, labels, normalise=False)
    assert calibration.temperature > 10
    other = log_softmax(rng.normal(0, 1, size=(120, 3)) + 2 * np.eye(3)[labels])
    parts = [calibration.log_probs(scores), other]
    stack = stacked(parts, fit_stack(parts, labels))
    assert np.median(np.exp(stack).max(axis=1)) < 0.9999
