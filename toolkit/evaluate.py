"""``toolkit evaluate``: a run's report on one split of its own data.

For an attribution run: accuracy, macro-F1, per-author precision and recall and a
confusion matrix over the split's passages, beside a classic stylometry baseline
(character 2-4-gram tf-idf and logistic regression) trained on exactly the same
training passages. For a generator run: loss in nats and bits per token and
perplexity on held-out text. The data are prepared again from the run's config
(the token-id cache makes that quick) and checked against the run's ``split.json``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from toolkit import runs
from toolkit.attribution import Attributor
from toolkit.data import prepare_config
from toolkit.errors import ToolkitError
from toolkit.runs import Run
from toolkit.state import reset_states
from toolkit.vocab import PAD


def prepared_data(run: Run):
    """The run's splits, rebuilt from its config and vocabulary and checked against split.json."""
    prepared = prepare_config(run.components, run.config, run.vocab)
    stored = run.file(runs.SPLIT)
    if stored.is_file():
        recorded = json.loads(stored.read_text())
        for name, split in prepared.splits.items():
            if recorded.get(name, split.sources) != split.sources:
                raise ToolkitError(f"the {name} split rebuilt from {run.path}'s config differs "
                                   f"from its {runs.SPLIT}: the corpus changed since training, "
                                   f"so the report would not be about held-out text")
    return prepared


def choose_split(prepared, split: str | None) -> str:
    if split is None:
        split = "test" if len(prepared.splits.get("test", ())) else "validation"
    if not len(prepared.splits.get(split, ())):
        have = [name for name, s in prepared.splits.items() if len(s)]
        raise ToolkitError(f"this run has no {split} split; choose --split from {have}")
    return split


def classification_report(true: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-author precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)

    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=classes, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(true, predicted)), 4),
        "macro_f1": round(float(f1_score(true, predicted, labels=classes, average="macro",
                                         zero_division=0)), 4),
        "per_author": {labels[i]: {"precision": round(float(precision[i]), 4),
                                   "recall": round(float(recall[i]), 4),
                                   "f1": round(float(f1[i]), 4), "passages": int(support[i])}
                       for i in classes},
        "confusion": confusion_matrix(true, predicted, labels=classes).tolist(),
    }


def ngram_baseline(train_texts, train_labels, test_texts, test_labels, labels,
                   sample_weight=None) -> dict:
    """Character 2-4-gram tf-idf with logistic regression, trained and scored on the same split.

    ``sample_weight`` are the training passages' weights (the LSTM's own: balanced
    class weights when the builder uses them)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(2, 4), sublinear_tf=True, min_df=2,
                        max_features=200_000),
        LogisticRegression(C=10.0, max_iter=2000))
    try:
        model.fit(train_texts, train_labels, logisticregression__sample_weight=sample_weight)
    except ValueError as err:
        raise ToolkitError(f"the n-gram baseline cannot be trained on this training split "
                           f"({err}); use --no-baseline") from None
    seconds = time.perf_counter() - start
    report = classification_report(np.asarray(test_labels), model.predict(test_texts), labels)
    return {"name": "char 2-4-gram tf-idf + logistic regression",
            "training_seconds": round(seconds, 1), **report}


def confusion_text(matrix: list[list[int]], labels: list[str]) -> str:
    """The confusion matrix as aligned text: rows are true authors, columns predicted ones."""
    corner = "true \\ predicted"
    first = max(len(corner), *(len(label) for label in labels)) + 2
    width = max(6, *(len(label) for label in labels)) + 2
    lines = [corner.ljust(first) + "".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(label.ljust(first) + "".join(str(n).rjust(width) for n in row))
    return "\n".join(lines)


def save_confusion_png(matrix: list[list[int]], labels: list[str], title: str, path) -> None:
    """A confusion-matrix heat map (rows normalized to recall), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, float)
    recall = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.7 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted author")
    axes.set_ylabel("true author")
    axes.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axes.text(j, i, int(counts[i, j]), ha="center", va="center",
                      color="white" if recall[i, j] > 0.5 else "black", fontsize=8)
    figure.colorbar(image, ax=axes, label="share of the row")
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}{runs.TMP_SUFFIX}.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    runs.replace_durably(tmp, path)


def evaluate(run_dir, split: str | None = None, baseline: bool = True) -> dict:
    """The run's report on ``split`` (default: test if it has one, else validation).

    A run whose head attributes gets the attribution report; any other the language
    model's figures. The report is written to the run as ``evaluation.json`` (and
    ``confusion.png``).
    """
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    prepared = prepared_data(run)
    split = choose_split(prepared, split)
    if run.head.attributes:
        report = attribution_report(run, prepared, split, baseline)
    else:
        report = language_model_report(run, prepared, split)
    runs.write_json(run.file(runs.EVALUATION), report)
    return report


def language_model_report(run: Run, prepared, split: str) -> dict:
    """The head's figures for the split, from ``model.evaluate`` on the builder's batches."""
    builder = run.builder
    data = builder.validation(builder.data(prepared.splits[split], run.labels))
    model = run.model
    reset_states(model)
    results = model.evaluate(data.dataset(), return_dict=True, verbose=0)
    figures = run.head.summarize(results)
    return {"run": str(run.path), "split": split, "kind": "language model",
            "head": run.config["head"]["use"], "tokens": prepared.splits[split].num_tokens,
            **figures, "summary": run.head.describe(figures)}


def attribution_report(run: Run, prepared, split: str, baseline: bool) -> dict:
    """Accuracy, macro-F1, per-author figures and confusion of the head's passage scores,
    beside the n-gram baseline trained on the same training passages."""
    builder = run.builder
    attributor = Attributor(run)
    labels = attributor.labels
    passages = builder.data(prepared.splits[split], labels)
    start = time.perf_counter()
    scores = attributor.passage_scores(passages.ids)
    report = {"run": str(run.path), "split": split, "kind": "attribution",
              "head": run.config["head"]["use"], **builder.describe(),
              "passages": len(passages), "labels": labels,
              "training_minutes": run.metrics().get("training_minutes")
              if run.file(runs.METRICS).is_file() else None,
              "scoring_seconds": round(time.perf_counter() - start, 1),
              "lstm": classification_report(passages.labels, scores.argmax(axis=1), labels)}
    if baseline:
        def texts(rows):
            return [run.preprocessor.detokenize(prepared.vocab.decode(row[row != PAD]))
                    for row in rows.ids]

        train = builder.data(prepared.splits["train"], labels, training=True)
        report["baseline"] = ngram_baseline(texts(train), train.labels, texts(passages),
                                            passages.labels, labels, train.weights)
    save_confusion_png(report["lstm"]["confusion"], labels,
                       f"{run.path.name}: {split} split, accuracy {report['lstm']['accuracy']}",
                       run.file(runs.CONFUSION))
    return report


def format_report(report: dict) -> str:
    """The report as text for the terminal."""
    if report["kind"] == "language model":
        return (f"{report['run']} ({report['split']} split, {report['tokens']} tokens): "
                f"{report['summary']}")
    how = f" (split.by = {report['split_by']})" if "split_by" in report else ""
    lines = [f"{report['run']}: {report['head']} head, {report['split']} split{how}, "
             f"{report['passages']} passages", ""]
    rows = [("LSTM", report["lstm"])]
    if "baseline" in report:
        rows.append(("baseline (char n-grams)", report["baseline"]))
    lines.append(f"{'model':<26}{'accuracy':>10}{'macro-F1':>10}")
    for name, r in rows:
        lines.append(f"{name:<26}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}")
    lines += ["", f"{'author':<14}{'precision':>10}{'recall':>10}{'passages':>10}"]
    for label, r in report["lstm"]["per_author"].items():
        lines.append(f"{label:<14}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['passages']:>10}")
    lines += ["", "confusion matrix (LSTM):", confusion_text(report["lstm"]["confusion"],
                                                              report["labels"])]
    return "\n".join(lines)
