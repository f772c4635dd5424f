"""``toolkit evaluate``: a run's report on one split of its own data.

For an attribution run: accuracy, macro-F1, per-author precision and recall and a
confusion matrix over the split's passages, beside a classic stylometry baseline
(character 2-4-gram tf-idf and logistic regression) trained on exactly the same
training passages. For a generator run: loss in nats and bits per token and
perplexity on held-out text. The data are prepared again from the run's config
(the token-id cache makes that quick) and checked against the run's ``split.json``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.attribution.attribute import (Attributor, ensemble_log_probs, passage_texts,
                                           read_ensemble, real_tokens)
from toolkit.attribution.calibration import Calibration
from toolkit.attribution.fitting import prepared_data
from toolkit.attribution.ngrams import NGRAM_NAME
from toolkit.errors import ToolkitError
from toolkit.model.state import reset_states
from toolkit.runs import rundir as runs
from toolkit.runs.rundir import Run


EVALUATED_SPLITS = ("train", "validation", "test")  # never "left_out" or "unseen"
# Text of authors the run never trained on: `sequences.split.unseen_authors`'s documents,
# and those of authors below `min_documents` (which a [pretrain] language model reads).
STRANGER_SPLITS = ("unseen", "left_out")


def choose_split(prepared, split: str | None) -> str:
    if split is not None and split not in EVALUATED_SPLITS:
        raise ToolkitError(f"no split {split!r} to evaluate; choose train, validation or test")
    if split is None:
        split = "test" if len(prepared.splits.get("test", ())) else "validation"
    if not len(prepared.splits.get(split, ())):
        have = [name for name in EVALUATED_SPLITS if len(prepared.splits.get(name, ()))]
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


def save_reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                         path: Path) -> None:
    """A reliability diagram: accuracy against confidence per bin, one line per model
    (name -> (probabilities, labels)), the diagonal being perfect calibration."""
    import matplotlib

    from toolkit.attribution.calibration import expected_calibration_error, reliability_bins

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, (probabilities, labels) in curves.items():
        points = reliability_bins(probabilities, labels)
        ece = expected_calibration_error(probabilities, labels)
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                  label=f"{name} (ECE {ece:.3f})")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}{runs.TMP_SUFFIX}.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    runs.replace_durably(tmp, path)


def evaluate(run_dir, split: str | None = None, baseline: bool = True,
             unseen_author: bool = False) -> dict:
    """The run's report on ``split`` (default: test if it has one, else validation).

    A run whose head attributes gets the attribution report; any other the language
    model's figures. Evaluating only reads the run (its model, calibration and ensemble:
    ``toolkit calibrate`` fits those) and writes the report itself: ``evaluation.json``
    (and for attribution ``confusion.png`` and ``reliability.png``), the same files
    every time for the same run and split.
    """
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    prepared = prepared_data(run)
    split = choose_split(prepared, split)
    if run.head.attributes:
        report = attribution_report(run, prepared, split, baseline, unseen_author)
    else:
        report = language_model_report(run, prepared, split)
    report = published(report)
    runs.write_json(run.file(runs.EVALUATION), report)
    return report


def published(report: dict) -> dict:
    """The report without the working data :func:`model_report` keeps for comparisons
    (each model's ``answers`` and its documents' ``order``)."""
    shown = {}
    for key, value in report.items():
        if isinstance(value, dict) and "answers" in value:
            value = {k: v for k, v in value.items() if k != "answers"}
            if "order" in value.get("documents", {}):
                value["documents"] = {k: v for k, v in value["documents"].items()
                                      if k != "order"}
        shown[key] = value
    return shown


def language_model_report(run: Run, prepared, split: str) -> dict:
    """The head's figures for the split, from ``model.evaluate`` on the builder's batches."""
    builder = run.builder
    data = builder.validation(builder.data(prepared.splits[split], run.labels))
    model = run.model
    reset_states(model)
    results = model.evaluate(data.dataset(), return_dict=True, verbose=0)
    figures = run.head.summarize(results)
    return {"run": str(run.path), "split": split, "kind": "language model",
            "head": run.config.head.use, "tokens": prepared.splits[split].num_tokens,
            **figures, "summary": run.head.describe(figures)}


def document_of(place: str) -> str:
    """The document a passage came from: its place without ``:start-stop`` (and ``#i/n``)."""
    return place.rsplit(":", 1)[0]


def model_report(log_probs: np.ndarray, passages, labels: list[str],
                 documents: tuple[list[str], np.ndarray] | None = None) -> dict:
    """Passage-level figures of one model's log-probabilities, and document-level ones
    (each document's passages pooled, see :func:`toolkit.attribution.calibration.pool`,
    unless ``documents`` gives the documents' own log-probabilities) when the passages
    say which document they came from. Accuracy and macro-F1 come with 95 % intervals
    that resample documents (:mod:`toolkit.attribution.stats`); ``answers`` (not
    written) keeps what was right for paired comparisons."""
    from toolkit.attribution.calibration import expected_calibration_error, pool
    from toolkit.attribution.stats import document_resamples, figures

    predicted = log_probs.argmax(axis=1)
    report = classification_report(passages.labels, predicted, labels)
    report["ece"] = round(expected_calibration_error(np.exp(log_probs), passages.labels), 4)
    if len(passages.places) != len(passages):  # a builder that does not say where passages lie
        return report
    order, pooled = documents or pool(log_probs, [document_of(s) for s in passages.places])
    truth = {document_of(s): label for s, label in zip(passages.places, passages.labels)}
    true = np.array([truth[d] for d in order])
    index = {d: i for i, d in enumerate(order)}
    passage_documents = np.array([index[document_of(s)] for s in passages.places])
    shown = figures(np.asarray(passages.labels), predicted, passage_documents, true,
                    pooled.argmax(axis=1), len(labels), document_resamples(len(order)))
    # macro-F1 over the authors present in the split, as its interval counts it
    report["macro_f1"], report["macro_f1_ci"] = shown["macro_f1"], shown["macro_f1_ci"]
    report["accuracy_ci"] = shown["accuracy_ci"]
    report["documents"] = {**shown["documents"],
                           "ece": round(expected_calibration_error(np.exp(pooled), true), 4),
                           "order": order}
    report["answers"] = {"correct": predicted == np.asarray(passages.labels),
                         "document_correct": pooled.argmax(axis=1) == true}
    return report


@dataclass
class Scored:
    """The evaluated split's passages and the LSTM's scores of them, and the validation
    split's where the report uses them (``None`` when the evaluated split is validation)."""

    passages: object
    scores: np.ndarray
    validation: object = None
    val_scores: np.ndarray | None = None


def attribution_report(run: Run, prepared, split: str, baseline: bool,
                       unseen_author: bool = False) -> dict:
    """The head's passage scores on ``split``, raw and calibrated, at passage and document
    level, beside the n-gram baseline trained on the same training passages and the
    ensemble of both (as ``toolkit calibrate`` stacked them on validation); the
    calibration's expected error before and after, and with ``unseen_author`` how well
    "unknown" is told apart (each author held out in turn, and on the texts of authors
    the run never trained on). Nothing of the run is written here."""
    attributor = Attributor(run)
    calibration, labels = attributor.calibration, attributor.labels
    ensemble = read_ensemble(run)
    if ensemble is not None and ensemble["labels"] != labels:
        ensemble = None  # fitted for other authors: neither its n-grams nor its weights apply
    scored = score_split(run, attributor, prepared, split)
    report = {"run": str(run.path), "split": split, "kind": "attribution",
              "head": run.config.head.use, **run.builder.describe(),
              "passages": len(scored.passages), "labels": labels,
              "training_minutes": run.metrics().get("training_minutes")
              if run.file(runs.METRICS).is_file() else None}
    log_probs = lstm_figures(run, report, scored, calibration)
    if baseline:
        log_probs.update(baseline_figures(run, report, prepared, scored, log_probs, ensemble))
    if unseen_author:
        unseen_figures(run, report, prepared, attributor, scored, log_probs, calibration,
                       ensemble)
    save_pictures(run, report, scored.passages, log_probs)
    return report


def score_split(run: Run, attributor: Attributor, prepared, split: str) -> Scored:
    """The LSTM's scores of the split's passages, and of validation's unless it is the split."""
    builder, labels = run.builder, attributor.labels
    passages = builder.data(prepared.splits[split], labels)
    scored = Scored(passages, attributor.passage_scores(passages.ids))
    if split != "validation" and len(prepared.splits.get("validation", ())):
        scored.validation = builder.data(prepared.splits["validation"], labels)
        scored.val_scores = attributor.passage_scores(scored.validation.ids)
    return scored


def lstm_figures(run: Run, report: dict, scored: Scored, calibration) -> dict:
    """The LSTM's rows of the report (raw, calibrated, normalised on the split itself);
    returns their log-probabilities by the name the reliability diagram shows."""
    from toolkit.attribution.calibration import log_softmax

    passages, labels = scored.passages, report["labels"]
    raw = log_softmax(scored.scores)
    report["lstm"] = model_report(raw, passages, labels)
    log_probs = {"LSTM, raw": raw}
    if calibration is not None:
        calibrated = calibration.log_probs(scored.scores, real_tokens(passages.ids))
        report["lstm_calibrated"] = model_report(calibrated, passages, labels)
        report["calibration"] = {**calibration.to_json(),
                                 "ece_before": report["lstm"]["ece"],
                                 "ece_after": report["lstm_calibrated"]["ece"],
                                 # on the validation split it is measured where it was fitted
                                 "fitted_on_this_split": scored.validation is None}
        log_probs["LSTM, calibrated"] = calibrated
    else:
        report["calibration_missing"] = (f"{run.path} has no {runs.CALIBRATION}: "
                                         f"`toolkit calibrate {run.path}` fits it on the "
                                         f"validation split (where the run has one)")
    if run.head.normalise_scores != "no" and scored.validation is not None and len(passages):
        report["lstm_transductive"] = transductive_report(
            scored.scores, passages, scored.val_scores, scored.validation, labels)
    return log_probs


def baseline_figures(run: Run, report: dict, prepared, scored: Scored, log_probs: dict,
                     ensemble) -> dict:
    """The classic baselines' rows (the character n-grams, Burrows' and Cosine Delta: the
    ensemble's members when the run has them, else fitted here on the training passages
    and not kept), the ensemble's row (with the calibrated LSTM of ``log_probs``, not on
    the validation split it was stacked on) and each model against the best classic
    baseline; returns the ensemble's log-probabilities."""
    from toolkit.attribution.attribute import member_log_probs
    from toolkit.attribution.fitting import fit_members

    passages, labels = scored.passages, report["labels"]
    members = ensemble
    if members is None or "delta" not in members:
        train = run.builder.data(prepared.splits["train"], labels, training=True)
        # Without a validation split the Deltas' temperatures are fitted on this one.
        members = fit_members(run, train, scored.validation or passages)
    ngram_test = member_log_probs(run, members, "ngrams", passages.ids)
    report["baseline"] = {"name": NGRAM_NAME, **model_report(ngram_test, passages, labels)}
    texts = document_texts(run, passages)
    for distance, delta in members["delta"].items():
        report[f"{distance}_delta"] = {
            "name": delta.name, **model_report(delta.log_probs(passage_texts(run, passages.ids)),
                                              passages, labels,
                                              (list(texts), delta.log_probs(list(texts.values()))))}
    lstm = log_probs.get("LSTM, calibrated")
    combined = None
    if ensemble is not None and lstm is not None and scored.validation is not None:
        combined = ensemble_log_probs(run, ensemble, passages.ids, lstm)
        report["ensemble"] = {"name": f"{' + '.join(ensemble['members'])}, stacked on validation",
                              "weights": dict(zip(ensemble["members"],
                                                  (round(w, 4) for w in ensemble["weights"]))),
                              **model_report(combined, passages, labels)}
    report["comparisons"] = comparisons(report, passages)
    return {} if combined is None else {"ensemble": combined}


CLASSIC = ("baseline", "burrows_delta", "cosine_delta")
COMPARED = ("lstm", "lstm_calibrated", "ensemble")


def best_classic(report: dict) -> str:
    """The classic baseline with the best document accuracy (then passage accuracy)."""
    present = [name for name in CLASSIC if name in report]
    return max(present, key=lambda name: (report[name].get("documents", {}).get("accuracy", 0),
                                          report[name]["accuracy"]))


def comparisons(report: dict, passages) -> dict:
    """Each toolkit model minus the best classic baseline on the same passages and
    documents (:func:`toolkit.attribution.stats.paired_difference`)."""
    from toolkit.attribution.stats import document_resamples, paired_difference, verdict

    if "documents" not in report["lstm"]:
        return {}
    best = best_classic(report)
    documents = report["lstm"]["documents"]["order"]
    index = {d: i for i, d in enumerate(documents)}
    passage_documents = np.array([index[document_of(s)] for s in passages.places])
    resamples = document_resamples(len(documents))
    result = {"against": best, "against_name": report[best]["name"]}
    for name in COMPARED:
        if name in report:
            difference = paired_difference(report[name]["answers"], report[best]["answers"],
                                           passage_documents, resamples)
            result[name] = {**difference, "verdict": verdict(difference)}
    return result


def document_texts(run: Run, passages) -> dict[str, str]:
    """Each document's passages as one text, in first-seen order (what a Delta reads)."""
    texts: dict[str, list[str]] = {}
    for place, text in zip(passages.places, passage_texts(run, passages.ids)):
        texts.setdefault(document_of(place), []).append(text)
    return {document: " ".join(parts) for document, parts in texts.items()}


def unseen_figures(run: Run, report: dict, prepared, attributor: Attributor, scored: Scored,
                   log_probs: dict, calibration, ensemble) -> None:
    """How well "unknown" is told apart: each author held out in turn (AUROC), and the
    texts of authors the run never trained on (``strangers``)."""
    from toolkit.attribution.calibration import unseen_author_auroc

    passages = scored.passages
    known = log_probs.get("LSTM, calibrated", log_probs["LSTM, raw"])
    report["unseen_author"] = unseen_author_auroc(known, passages.labels)
    if "ensemble" in log_probs:
        report["unseen_author_ensemble"] = unseen_author_auroc(log_probs["ensemble"],
                                                               passages.labels)
    strangers = stranger_passages(run, prepared)
    if strangers is None:
        return
    stranger_lstm = attributor.log_probs(strangers.ids)  # calibrated where the run is
    models = {"lstm": (known, stranger_lstm)}
    if "ensemble" in log_probs:
        models["ensemble"] = (log_probs["ensemble"],
                              ensemble_log_probs(run, ensemble, strangers.ids, stranger_lstm))
    report["strangers"] = strangers_report(run, strangers, passages, models, calibration)


def save_pictures(run: Run, report: dict, passages, log_probs: dict) -> None:
    """The confusion matrix and the reliability diagram of the report."""
    name, split = run.path.name, report["split"]
    save_confusion_png(report["lstm"]["confusion"], report["labels"],
                       f"{name}: {split} split, accuracy {report['lstm']['accuracy']}",
                       run.file(runs.CONFUSION))
    curves = {label: (np.exp(values), passages.labels) for label, values in log_probs.items()}
    save_reliability_png(curves, f"{name}: {split} split, passages", run.file(runs.RELIABILITY))


@dataclass
class Strangers:
    """Passages of authors the run never trained on: each row's ids (right-padded), where
    it comes from, its author and the split it was planned in."""

    ids: np.ndarray
    places: list[str]
    authors: list[str]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def stranger_passages(run: Run, prepared) -> Strangers | None:
    """The passages of :data:`STRANGER_SPLITS` the head can score; ``None`` when the run
    has no such text."""
    ids, places, authors, splits = [], [], [], []
    for name in STRANGER_SPLITS:
        split = prepared.splits.get(name)
        if split is None or not len(split):
            continue
        rows = run.builder.data(split)  # no labels: these authors have no head
        author_of = {document_of(s): label for s, label in zip(split.places, split.labels)}
        keep = real_tokens(rows.ids) >= max(run.head.min_tokens, 1)
        ids.append(rows.ids[keep])
        kept_places = [s for s, k in zip(rows.places, keep) if k]
        places += kept_places
        authors += [author_of[document_of(s)] for s in kept_places]
        splits += [name] * len(kept_places)
    if not places:
        return None
    return Strangers(np.concatenate(ids), places, authors, splits)


def strangers_report(run: Run, strangers: Strangers, passages, models: dict,
                     calibration) -> dict:
    """How well each model tells the split's passages (known authors) from the strangers'
    (see :func:`toolkit.attribution.calibration.stranger_separation`), at passage and document level,
    with the threshold ``attribute`` answers ``unknown`` below."""
    from toolkit.attribution.calibration import stranger_separation

    threshold = calibration.unknown_below if calibration is not None else None
    known_documents = ([document_of(s) for s in passages.places]
                       if len(passages.places) == len(passages) else [])
    stranger_documents = [document_of(s) for s in strangers.places]
    read = run.config.get("pretrain", {}).get("epochs", 0) > 0 and "left_out" in strangers.splits
    report = {"authors": sorted(set(strangers.authors), key=str),
              "documents": len(set(stranger_documents)), "passages": len(strangers),
              "from": dict(Counter(split for _, split in
                                   set(zip(stranger_documents, strangers.splits)))),
              # the core read the left-out documents while pretraining: not quite strangers
              "left_out_read_by_pretraining": bool(read)}
    for name, (known, strange) in models.items():
        report[name] = stranger_separation(known, known_documents, strange,
                                           stranger_documents, threshold)
    return report


def transductive_report(scores: np.ndarray, passages, val_scores: np.ndarray, validation,
                        labels: list[str]) -> dict:
    """Bagnall's transductive normalisation: each author's mean score per token over the
    passages being attributed (their labels unused) is subtracted, then a temperature
    fitted on validation (centred the same way) applies. It needs many texts from
    several authors at once, as a test split has; one document alone would cancel out."""
    tokens = real_tokens(passages.ids)
    normalised = transductive_calibration(scores, tokens, val_scores, validation)
    return {"name": "LSTM, each author's mean score on this split subtracted",
            "offsets": [round(o, 6) for o in normalised.offsets],
            "temperature": round(normalised.temperature, 4),
            **model_report(normalised.log_probs(scores, tokens), passages, labels)}


def transductive_calibration(scores: np.ndarray, tokens: np.ndarray, val_scores: np.ndarray,
                             validation) -> Calibration:
    """The per-author offsets of :func:`transductive_report`: each author's mean score per
    token over ``scores`` itself, with a temperature fitted on the validation passages."""
    from toolkit.attribution.calibration import fit_temperature

    offsets = (scores / np.maximum(tokens, 1)[:, None]).mean(axis=0)
    normalised = Calibration([float(o) for o in offsets])
    normalised.temperature = fit_temperature(
        normalised.centred(val_scores, real_tokens(validation.ids)), validation.labels)
    return normalised


def unknown_rule(log_odds: float | None) -> str:
    """The "unknown" threshold as people read it."""
    from toolkit.attribution.calibration import probability_of

    if log_odds is None:
        return "never \"unknown\" (no threshold did better than accepting every answer)"
    return (f"\"unknown\" below log-odds {log_odds:.3g} of the top answer (a top "
            f"probability of {probability_of(log_odds):.6g})")


def strangers_lines(strangers: dict) -> list[str]:
    """The strangers' part of the report as text."""
    read = (" (the left-out ones were read by [pretrain])"
            if strangers["left_out_read_by_pretraining"] else "")
    rule = unknown_rule(strangers["lstm"]["unknown_below"])
    lines = [f"strangers: {strangers['documents']} document(s) by "
             f"{len(strangers['authors'])} author(s) the run never trained on{read}, "
             f"{strangers['passages']} passages; {rule}",
             f"{'model':<12}{'level':<11}{'AUROC':>8}{'strangers unknown':>19}"
             f"{'known unknown':>15}"]
    for model in ("lstm", "ensemble"):
        for level in ("passages", "documents"):
            figures = strangers.get(model, {}).get(level)
            if figures:
                lines.append(f"{'LSTM' if model == 'lstm' else model:<12}{level:<11}"
                             f"{figures['auroc']:>8.4f}{figures['strangers_unknown']:>19.1%}"
                             f"{figures['known_unknown']:>15.1%}")
    return lines


def with_interval(value, bounds) -> str:
    """``0.8123 [0.75, 0.87]``; just the value without bounds."""
    if bounds is None:
        return f"{value:.4f}"
    return f"{value:.4f} [{bounds[0]:.2f}, {bounds[1]:.2f}]"


def figures_table(rows: list[tuple[str, dict]]) -> list[str]:
    """Models' accuracy, macro-F1, ECE and document accuracy, with their 95 % intervals."""
    lines = [f"{'model':<24}{'accuracy [95% CI]':>23}{'macro-F1 [95% CI]':>23}{'ECE':>7}"
             f"{'docs':>6}{'doc. accuracy [95% CI]':>24}"]
    for name, r in rows:
        documents = r.get("documents")
        doc = (with_interval(documents["accuracy"], documents.get("accuracy_ci"))
               if documents else "-")
        lines.append(f"{name:<24}{with_interval(r['accuracy'], r.get('accuracy_ci')):>23}"
                     f"{with_interval(r['macro_f1'], r.get('macro_f1_ci')):>23}"
                     f"{r['ece']:>7.3f}{documents['count'] if documents else '-':>6}{doc:>24}")
    lines.append("(intervals: 95 % bootstrap over documents, passages of a drawn document "
                 "kept together)")
    return lines


COMPARED_NAMES = {"lstm": "LSTM", "lstm_calibrated": "LSTM, calibrated",
                  "lstm_transductive": "LSTM, on-fold offsets", "ensemble": "ensemble",
                  "ensemble_folds": "ensemble, fold weights"}


def comparison_lines(comparisons: dict) -> list[str]:
    """Each model minus the best classic baseline, paired, with McNemar's p on documents."""
    lines = [f"against the best classic baseline ({comparisons['against_name']}), paired on "
             f"the same documents:",
             f"{'model':<24}{'Δ accuracy [95% CI]':>24}{'Δ doc. accuracy [95% CI]':>27}"
             f"{'McNemar p':>11}  verdict"]
    for key, name in COMPARED_NAMES.items():
        c = comparisons.get(key)
        if c is None:
            continue
        lines.append(f"{name:<24}{signed(c['accuracy'], c['accuracy_ci']):>24}"
                     f"{signed(c['document_accuracy'], c['document_accuracy_ci']):>27}"
                     f"{c['mcnemar_documents']['p']:>11.3g}  {c['verdict']}")
    return lines


def signed(value: float, bounds: list[float]) -> str:
    return f"{value:+.4f} [{bounds[0]:+.2f}, {bounds[1]:+.2f}]"


def format_report(report: dict) -> str:
    """The report as text for the terminal."""
    if report["kind"] == "language model":
        return (f"{report['run']} ({report['split']} split, {report['tokens']} tokens): "
                f"{report['summary']}")
    how = f" (split.by = {report['split_by']})" if "split_by" in report else ""
    lines = [f"{report['run']}: {report['head']} head, {report['split']} split{how}, "
             f"{report['passages']} passages", ""]
    rows = [("LSTM", report["lstm"]), ("LSTM, calibrated", report.get("lstm_calibrated")),
            ("LSTM, on-split offsets", report.get("lstm_transductive")),
            ("char n-grams", report.get("baseline")),
            ("Burrows' Delta", report.get("burrows_delta")),
            ("Cosine Delta", report.get("cosine_delta")),
            ("ensemble", report.get("ensemble"))]
    lines += figures_table([(name, r) for name, r in rows if r is not None])
    if report.get("comparisons"):
        lines += ["", *comparison_lines(report["comparisons"])]
    if "calibration" in report:
        c = report["calibration"]
        lines += ["", f"calibration (fitted on {c['fitted_on']['passages']} validation "
                      f"passages{', this split' if c['fitted_on_this_split'] else ''}): "
                      f"temperature {c['temperature']:.3g}, expected calibration "
                      f"error {c['ece_before']:.3f} -> {c['ece_after']:.3f}; "
                      f"{unknown_rule(c['unknown_below'])}"]
    for key, name in (("unseen_author", "LSTM"), ("unseen_author_ensemble", "ensemble")):
        if report.get(key, {}).get("auroc") is not None:
            lines.append(f"unseen authors ({name}, each author held out in turn): AUROC "
                         f"{report[key]['auroc']:.4f} ({report[key]['pairs']} passage roles)")
    if "strangers" in report:
        lines += ["", *strangers_lines(report["strangers"])]
    lines += ["", f"{'author':<14}{'precision':>10}{'recall':>10}{'passages':>10}"]
    for label, r in report["lstm"]["per_author"].items():
        lines.append(f"{label:<14}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['passages']:>10}")
    lines += ["", "confusion matrix (LSTM):", confusion_text(report["lstm"]["confusion"],
                                                              report["labels"])]
    return "\n".join(lines)
