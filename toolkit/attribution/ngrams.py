"""The classic stylometry baseline: character n-grams and a linear model (scikit-learn).

``toolkit evaluate`` trains it on exactly the LSTM's training passages and reports it
beside the LSTM; stacked with the LSTM it is the ``ensemble`` attribution model.
"""

from __future__ import annotations

import numpy as np

from toolkit.errors import ToolkitError

NGRAM_NAME = "char 2-4-gram tf-idf + logistic regression"


def fit_ngram(train_texts, train_labels, sample_weight=None):
    """Character 2-4-gram tf-idf with logistic regression (scikit-learn), fitted on the
    training passages' texts. ``sample_weight`` are the training passages' weights (the
    LSTM's own: balanced class weights when the builder uses them)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(2, 4), sublinear_tf=True, min_df=2,
                        max_features=200_000),
        LogisticRegression(C=10.0, max_iter=2000))
    try:
        model.fit(train_texts, train_labels, logisticregression__sample_weight=sample_weight)
    except ValueError as err:
        raise ToolkitError(f"the n-gram baseline cannot be trained on this training split "
                           f"({err}); use --no-baseline") from None
    return model


def ngram_log_probs(model, texts, authors: int) -> np.ndarray:
    """The n-gram model's log-probabilities ``(texts, authors)`` (authors it never saw get
    a probability of 1e-12)."""
    probabilities = np.full((len(texts), authors), 1e-12)
    probabilities[:, model.classes_] = np.maximum(model.predict_proba(texts), 1e-12)
    return np.log(probabilities / probabilities.sum(axis=1, keepdims=True))
