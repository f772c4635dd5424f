"""Attribution cross-validated over documents: the folds, their predictions, the summary.

Every document of every author with at least ``sequences.split.min_documents``
documents is dealt into one of K folds (:func:`toolkit.splits.document_folds`). Fold
``i`` is an ordinary run directory trained with ``sequences.split.folds = K`` and
``fold = i``: it tests on the documents of fold ``i`` and never reads them in training
or validation (validation is the tail of its training documents, as for ``split.by =
"document"``). Each fold writes its test predictions (``predictions.json``) once it is
trained; a killed ``crossval`` continues with the folds it has not finished
(:mod:`toolkit.training.crossval` trains them).

The predictions of every model are then pooled over the folds, so every document is
tested exactly once, and reported with 95 % intervals that resample documents: the LSTM
(raw and calibrated), the character n-grams, Burrows' and Cosine Delta, the ensemble as
each fold stacked it on its validation split, and the ensemble with its weights fitted
on the other folds' test predictions. Each is compared with the best classic baseline on
the same documents (paired bootstrap, McNemar's exact test). The "unknown" threshold is
fitted on the pooled document predictions (each author held out in turn) and measured
on the documents of the authors below ``min_documents``: strangers to every fold.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.runs import rundir as runs

PLAN, RESULTS, PREDICTIONS = "crossval-plan.json", runs.CROSSVAL, "predictions.json"
# The models of a fold's predictions, by the names the results use.
MODELS = {"lstm": "LSTM, raw", "lstm_calibrated": "LSTM, calibrated",
          "lstm_transductive": "LSTM, on-fold offsets",
          "ngrams": "char n-grams", "burrows_delta": "Burrows' Delta",
          "cosine_delta": "Cosine Delta", "ensemble": "ensemble",
          "ensemble_folds": "ensemble, fold weights"}
DESCRIPTIONS = {
    "lstm_transductive": "per-author LMs with each author's mean score per token over the "
                         "fold's test passages subtracted (Bagnall's transductive "
                         "normalisation: labels unused, but it needs the fold's texts at once)",
    "ngrams": "character 2-4-gram tf-idf + logistic regression",
    "burrows_delta": "mean |z| difference over the most frequent words, nearest author",
    "cosine_delta": "cosine distance of the most frequent words' z-scores, nearest author",
    "ensemble": "the members of [ensemble] stacked by weights fitted on each fold's "
                "validation split",
    "ensemble_folds": "calibrated LSTM, n-grams and both Deltas stacked by weights fitted "
                      "on the other folds' test predictions"}
CLASSIC = ("ngrams", "burrows_delta", "cosine_delta")
COMPARED = ("lstm", "lstm_calibrated", "lstm_transductive", "ensemble", "ensemble_folds")
# What the fold-fitted ensemble stacks: every member a fold can score.
FOLD_MEMBERS = ("lstm_calibrated", "ngrams", "burrows_delta", "cosine_delta")
OPEN_SET_MODELS = ("lstm_calibrated", "ensemble", "ensemble_folds")


@dataclass
class FoldPlan:
    """Which documents each fold tests, and the strangers' documents."""

    folds: int
    documents: list[str]  # the attributed documents, in corpus order
    authors: list[str]  # each one's author
    fold_of: list[int]  # each one's fold
    strangers: list[str]  # documents of authors below min_documents (or unseen_authors)

    def to_json(self) -> dict:
        return {"folds": self.folds, "documents": dict(zip(self.documents, self.fold_of)),
                "authors": dict(zip(self.documents, self.authors)),
                "strangers": self.strangers}

    def stranger_fold(self, document: str) -> int:
        """The one fold whose model scores a stranger's document."""
        if not hasattr(self, "_stranger_index"):
            self._stranger_index = {d: i for i, d in enumerate(self.strangers)}
        return self._stranger_index[document] % self.folds


def parse_folds(value: str) -> int | str:
    """``--folds``: a number of folds, or ``all`` (one fold per document)."""
    if value == "all":
        return value
    try:
        folds = int(value)
    except ValueError:
        raise ToolkitError(f"--folds: expected a number of folds (2 or more) or \"all\", "
                           f"received {value!r}") from None
    if folds < 2:
        raise ToolkitError(f"--folds: cross-validation needs 2 or more folds, received {folds}")
    return folds


def plan_folds(resolved, components, folds: int | str, config_file: str) -> FoldPlan:
    """Check that the config can be cross-validated and deal its documents into folds,
    before any training: every refusal names the setting to change."""
    from toolkit.splits import document_folds

    head, builder = components.head, components.sequences
    if not head.attributes:
        raise ToolkitError(f"{config_file}: crossval measures attribution, but head "
                           f"{resolved.head.use!r} does not attribute; use a classifier or "
                           f"author-lms head")
    if not hasattr(builder, "kept_documents"):
        raise ToolkitError(f"{config_file}: crossval deals documents into folds, which "
                           f"sequences = {resolved.sequences.use!r} cannot; use "
                           f"sequences.use = \"passages\"")
    # Names and labels only: a big corpus's texts are never held in memory at once.
    documents = [SimpleNamespace(name=d.name, label=d.label)
                 for d in components.corpus.documents()]
    twice = sorted(name for name, n in Counter(d.name for d in documents).items() if n > 1)
    if twice:
        raise ToolkitError(f"{config_file}: crossval tells documents apart by name, but "
                           f"{len(twice)} names are used more than once (e.g. {twice[0]!r}); "
                           f"give every document its own name (the corpus's name setting, "
                           f"e.g. jsonl's name_field)")
    unlabelled = [d.name for d in documents if d.label is None]
    if unlabelled:
        raise ToolkitError(f"{config_file}: crossval needs every document's author, but "
                           f"{len(unlabelled)} of {len(documents)} documents have no label "
                           f"(e.g. {unlabelled[0]!r}); set the corpus's label setting "
                           f"(e.g. directory's label_from = \"folder\")")
    if builder.min_documents < 2:
        raise ToolkitError(f"{config_file}: sequences.split.min_documents = "
                           f"{builder.min_documents}: an author with one document could "
                           f"not be trained on when it is tested; set it to 2 or more "
                           f"(--set sequences.split.min_documents=2); those authors then "
                           f"become the open-set test's strangers")
    unseen = set(builder.unseen_documents(documents))
    kept = sorted(builder.kept_documents(documents, unseen))
    authors = sorted({str(documents[d].label) for d in kept})
    if len(authors) < 2:
        raise ToolkitError(f"{config_file}: attribution needs 2 or more authors with "
                           f"{builder.min_documents} documents; this corpus has "
                           f"{len(authors)} ({', '.join(authors) or 'none'})")
    count = len(kept) if folds == "all" else folds
    if count > len(kept):
        raise ToolkitError(f"--folds {folds}: there are {len(kept)} documents by authors "
                           f"with {builder.min_documents} or more, so at most {len(kept)} "
                           f"folds (--folds all tests one document per fold)")
    labels = [str(documents[d].label) for d in kept]
    attributed = set(kept)
    strangers = sorted(d.name for i, d in enumerate(documents) if i not in attributed)
    return FoldPlan(count, [documents[d].name for d in kept], labels,
                    document_folds([documents[d].label for d in kept], count,
                                   resolved.train.seed), strangers)


def fold_overrides(plan: FoldPlan, fold: int) -> list[str]:
    return ["sequences.split.by=document", f"sequences.split.folds={plan.folds}",
            f"sequences.split.fold={fold}"]


def fold_dir(out: Path, fold: int, folds: int) -> Path:
    return out / f"fold-{fold + 1:0{len(str(folds))}d}"


# An ensemble member's name in [ensemble] members -> its model's name here.
MEMBER_MODELS = {"lstm": "lstm_calibrated", "ngrams": "ngrams",
                 "burrows-delta": "burrows_delta", "cosine-delta": "cosine_delta"}


def member_models(run, ensemble: dict, ids: np.ndarray, calibrated: np.ndarray) -> dict:
    """Every ensemble member's log-probabilities of the passages ``ids``, and the
    ensemble's as the run stacked it, by model name."""
    from toolkit.attribution.attribute import member_log_probs
    from toolkit.attribution.calibration import stacked

    values = {name: member_log_probs(run, ensemble, member, ids, calibrated)
              for member, name in MEMBER_MODELS.items()}
    values["ensemble"] = stacked([values[MEMBER_MODELS[m]] for m in ensemble["members"]],
                                 ensemble["weights"])
    return values


def fold_predictions(run_dir: Path, plan: FoldPlan, fold: int) -> dict:
    """Every model's log-probabilities of the fold's test passages and documents, and
    of the strangers' documents this fold scores."""
    from toolkit.attribution.attribute import Attributor, read_ensemble, real_tokens
    from toolkit.attribution.calibration import log_softmax, pool
    from toolkit.attribution.evaluate import (document_of, document_texts, stranger_passages,
                                              transductive_calibration)
    from toolkit.attribution.fitting import prepared_data
    from toolkit.runs.rundir import Run

    run = Run.open(run_dir)
    attributor = Attributor(run)
    prepared = prepared_data(run)
    ensemble = read_ensemble(run)
    if attributor.calibration is None or ensemble is None or "delta" not in ensemble:
        raise ToolkitError(f"{run_dir} has no calibration or ensemble to score with; "
                           f"`toolkit calibrate {run_dir}` fits them, then run crossval again")
    labels = attributor.labels
    test = run.builder.data(prepared.splits["test"], labels)
    planned = {d for d, f in zip(plan.documents, plan.fold_of) if f == fold}
    tested = {document_of(s) for s in test.places}
    if tested != planned:
        raise ToolkitError(f"{run_dir} tests {len(tested)} documents where the plan has "
                           f"{len(planned)} (missing: {sorted(planned - tested)[:3]}): a "
                           f"document too short for one passage of sequences.min_length "
                           f"tokens; lower it or leave such documents out")
    scores = attributor.passage_scores(test.ids)
    calibrated = attributor.calibration.log_probs(scores, real_tokens(test.ids))
    passages = {"lstm": log_softmax(scores),
                **member_models(run, ensemble, test.ids, calibrated)}
    if run.head.normalise_scores != "no":  # per-author LMs: Bagnall's on-fold offsets
        validation = run.builder.data(prepared.splits["validation"], labels)
        normalised = transductive_calibration(scores, real_tokens(test.ids),
                                              attributor.passage_scores(validation.ids),
                                              validation)
        passages["lstm_transductive"] = normalised.log_probs(scores, real_tokens(test.ids))
    places = [document_of(s) for s in test.places]
    order, _ = pool(calibrated, places)
    documents = {name: pool(values, places)[1] for name, values in passages.items()}
    texts = document_texts(run, test)
    for distance in ("burrows", "cosine"):  # a Delta reads a whole document at once
        documents[f"{distance}_delta"] = ensemble["delta"][distance].log_probs(
            [texts[d] for d in order])
    truth = dict(zip(places, test.labels))
    result = {
        "fold": fold, "labels": labels, "unknown_below": attributor.calibration.unknown_below,
        "ensemble": {"members": ensemble["members"], "weights": ensemble["weights"]},
        "passages": {"documents": places, "labels": [int(x) for x in test.labels],
                     "models": {k: v.tolist() for k, v in passages.items()}},
        "documents": {"names": order, "labels": [int(truth[d]) for d in order],
                      "models": {k: v.tolist() for k, v in documents.items()}},
        "strangers": {"names": [], "authors": [], "models": {}},
        "training_minutes": run.metrics().get("training_minutes"),
        # [pretrain] reads the documents below min_documents: the strangers
        "pretraining_read_strangers": bool(run.config.pretrain.epochs),
    }
    strangers = stranger_passages(run, prepared)
    if strangers is not None:
        mine = np.array([plan.stranger_fold(document_of(s)) == fold for s in strangers.places])
        if mine.any():
            ids = strangers.ids[mine]
            places = [document_of(s) for s, m in zip(strangers.places, mine) if m]
            authors = dict(zip(places, (a for a, m in zip(strangers.authors, mine) if m)))
            lstm = attributor.log_probs(ids)
            parts = member_models(run, ensemble, ids, lstm)
            names, _ = pool(lstm, places)
            result["strangers"] = {
                "names": names, "authors": [str(authors[d]) for d in names],
                "passages": places,
                "models": {k: v.tolist() for k, v in parts.items()}}
    return result


@dataclass
class Pooled:
    """Every fold's test predictions end to end."""

    labels: list[str]
    passage_labels: np.ndarray
    passage_documents: np.ndarray  # index into documents
    documents: list[str]
    document_labels: np.ndarray
    passages: dict  # model -> (passages, authors) log-probabilities
    document_models: dict  # model -> (documents, authors)
    folds_of_passages: np.ndarray
    folds_of_documents: np.ndarray
    fold_weights: dict  # fold -> the fold-fitted ensemble's weights of FOLD_MEMBERS


def read_folds(out: Path, plan: FoldPlan) -> list[dict]:
    folds = []
    for fold in range(plan.folds):
        path = fold_dir(out, fold, plan.folds) / PREDICTIONS
        folds.append(json.loads(path.read_text()))
    first = folds[0]["labels"]
    for f in folds[1:]:
        if f["labels"] != first:
            raise ToolkitError(f"{out}: fold {f['fold'] + 1} attributes to {f['labels']}, "
                               f"fold 1 to {first}; every fold must know the same authors")
    return folds


def pool_folds(folds: list[dict]) -> Pooled:
    """The folds' predictions as one set, with the fold-fitted ensemble added: for each
    fold, the members' passage log-probabilities stacked by weights fitted on the
    other folds' test passages."""
    from toolkit.attribution.calibration import fit_stack, pool, stacked

    documents = [d for f in folds for d in f["documents"]["names"]]
    index = {d: i for i, d in enumerate(documents)}
    # Models every fold scored (a fold scored before a model was added lacks it).
    names = [n for n in folds[0]["passages"]["models"]
             if all(n in f["passages"]["models"] for f in folds)]
    passages = {name: np.concatenate([np.array(f["passages"]["models"][name]) for f in folds])
                for name in names}
    document_models = {name: np.concatenate([np.array(f["documents"]["models"][name])
                                             for f in folds])
                       for name in names}
    passage_labels = np.concatenate([f["passages"]["labels"] for f in folds]).astype(int)
    folds_of_passages = np.concatenate([[f["fold"]] * len(f["passages"]["labels"])
                                        for f in folds]).astype(int)
    passage_document_names = [d for f in folds for d in f["passages"]["documents"]]
    fold_weighted, fold_weights = np.zeros_like(passages["lstm"]), {}
    for f in folds:
        mine = folds_of_passages == f["fold"]
        if (~mine).any() and len(set(passage_labels[~mine])) > 1:
            weights = fit_stack([passages[m][~mine] for m in FOLD_MEMBERS], passage_labels[~mine])
        else:  # one fold alone: nothing else to fit on
            weights = [1.0] + [0.0] * (len(FOLD_MEMBERS) - 1)
        fold_weights[f["fold"]] = weights
        fold_weighted[mine] = stacked([passages[m][mine] for m in FOLD_MEMBERS], weights)
    passages["ensemble_folds"] = fold_weighted
    order, pooled = pool(fold_weighted, passage_document_names)
    row = {d: i for i, d in enumerate(order)}
    document_models["ensemble_folds"] = pooled[[row[d] for d in documents]]
    return Pooled(folds[0]["labels"], passage_labels,
                  np.array([index[d] for d in passage_document_names]), documents,
                  np.concatenate([f["documents"]["labels"] for f in folds]).astype(int),
                  passages, document_models, folds_of_passages,
                  np.concatenate([[f["fold"]] * len(f["documents"]["names"])
                                  for f in folds]).astype(int), fold_weights)


def summarise(out: Path, plan: FoldPlan) -> dict:
    """The pooled figures with their intervals, the comparisons and the open set."""
    from toolkit.attribution.calibration import expected_calibration_error
    from toolkit.attribution.stats import (document_resamples, figures, paired_difference,
                                           verdict)

    folds = read_folds(out, plan)
    pooled = pool_folds(folds)
    resamples = document_resamples(len(pooled.documents))
    classes = len(pooled.labels)
    models, answers = {}, {}
    for name in (n for n in MODELS if n in pooled.passages):
        predicted = pooled.passages[name].argmax(axis=1)
        document_predicted = pooled.document_models[name].argmax(axis=1)
        models[name] = {"name": MODELS[name], "description": DESCRIPTIONS.get(name, ""),
                        **figures(
            pooled.passage_labels, predicted, pooled.passage_documents, pooled.document_labels,
            document_predicted, classes, resamples),
            "ece": round(expected_calibration_error(np.exp(pooled.passages[name]),
                                                    pooled.passage_labels), 4)}
        answers[name] = {"correct": predicted == pooled.passage_labels,
                         "document_correct": document_predicted == pooled.document_labels}
    best = max(CLASSIC, key=lambda n: (models[n]["documents"]["accuracy"],
                                       models[n]["accuracy"]))
    comparisons = {"against": best, "against_name": MODELS[best]}
    for name in (n for n in COMPARED if n in answers):
        difference = paired_difference(answers[name], answers[best], pooled.passage_documents,
                                       resamples)
        comparisons[name] = {**difference, "verdict": verdict(difference)}
    minutes = [f.get("training_minutes") for f in folds]
    return {
        "kind": "crossval", "out": str(out), "folds": plan.folds,
        "documents": len(pooled.documents), "passages": int(len(pooled.passage_labels)),
        "authors": pooled.labels, "models": models, "comparisons": comparisons,
        "open_set": open_set(pooled, folds),
        "training_minutes": round(sum(m for m in minutes if m is not None), 2),
        "fold_runs": [str(fold_dir(out, f, plan.folds)) for f in range(plan.folds)],
        "intervals": "95 % percentile bootstrap over documents (2,000 resamples), a drawn "
                     "document's passages kept together",
    }


def open_set(pooled: Pooled, folds: list[dict]) -> dict:
    """Whether a document is by none of the authors: the threshold fitted on the pooled
    documents (:func:`~toolkit.attribution.calibration.simulated_strangers`: each
    document also scored without its own author), its AUROC and the share answered
    ``unknown`` among known and stranger documents, beside each fold's own
    (passage-level, validation-fitted) threshold."""
    from sklearn.metrics import roc_auc_score

    from toolkit.attribution.calibration import (fit_threshold, simulated_strangers,
                                                 top_log_odds)

    stranger_names = [d for f in folds for d in f["strangers"]["names"]]
    result = {"stranger_documents": len(stranger_names),
              "stranger_authors": sorted({a for f in folds for a in f["strangers"]["authors"]}),
              "strangers_read_by_pretraining": any(f.get("pretraining_read_strangers")
                                                   for f in folds),
              # the threshold is fitted on the known documents it is measured on
              "known_unknown_is_in_sample": True}
    own_threshold = np.array([folds[f]["unknown_below"] if folds[f]["unknown_below"] is not None
                              else -np.inf for f in pooled.folds_of_documents])
    stranger_own = []
    for f in folds:
        if f["strangers"]["names"]:
            below = f["unknown_below"] if f["unknown_below"] is not None else -np.inf
            stranger_own += [below] * len(f["strangers"]["names"])
    for name in OPEN_SET_MODELS:
        known = pooled.document_models[name]
        confidence, unknown = simulated_strangers(known, pooled.document_labels)
        threshold = fit_threshold(confidence, unknown)
        below = -np.inf if threshold is None else threshold
        known_top = top_log_odds(known)
        figures = {"unknown_below": threshold,
                   "held_out_auroc": (round(float(roc_auc_score(~unknown, confidence)), 4)
                                      if unknown.any() else None),
                   "known_unknown": round(float((known_top < below).mean()), 4)}
        if name != "ensemble_folds":  # each fold's own threshold belongs to its own models
            figures["known_unknown_fold_thresholds"] = round(
                float((known_top < own_threshold).mean()), 4)
        if stranger_names:
            strange = np.concatenate([stranger_documents(f, name, pooled.fold_weights)
                                      for f in folds if f["strangers"]["names"]])
            strange_top = top_log_odds(strange)
            is_known = np.r_[np.ones(len(known_top), bool), np.zeros(len(strange_top), bool)]
            figures["auroc"] = round(float(roc_auc_score(
                is_known, np.r_[known_top, strange_top])), 4)
            figures["strangers_unknown"] = round(float((strange_top < below).mean()), 4)
            if name != "ensemble_folds":
                figures["strangers_unknown_fold_thresholds"] = round(
                    float((strange_top < np.array(stranger_own)).mean()), 4)
        result[name] = figures
    return result


def stranger_documents(fold: dict, name: str, fold_weights: dict) -> np.ndarray:
    """The strangers' document log-probabilities under model ``name`` by the fold that
    scored them (the fold-fitted ensemble with that fold's weights)."""
    from toolkit.attribution.calibration import pool, stacked

    strangers = fold["strangers"]
    models = {k: np.array(v) for k, v in strangers["models"].items()}
    if name == "ensemble_folds":
        values = stacked([models[m] for m in FOLD_MEMBERS], fold_weights[fold["fold"]])
    else:
        values = models[name]
    order, pooled = pool(values, strangers["passages"])
    row = {d: i for i, d in enumerate(order)}
    return pooled[[row[d] for d in strangers["names"]]]


def format_results(results: dict) -> str:
    """The summary as text for the terminal."""
    from toolkit.attribution.evaluate import comparison_lines, figures_table

    open_ = results["open_set"]
    lines = [f"{results['out']}: {results['folds']} folds, {results['documents']} documents "
             f"by {len(results['authors'])} authors, {results['passages']} passages, each "
             f"tested once by a run that never read it "
             f"({results['training_minutes']} training minutes in all)", ""]
    lines += figures_table([(m["name"], m) for m in results["models"].values()])
    lines += ["", *comparison_lines(results["comparisons"])]
    lines += ["", f"open set, documents ({open_['stranger_documents']} by "
                  f"{len(open_['stranger_authors'])} authors outside the folds' authors):",
              f"{'model':<24}{'AUROC':>7}{'held-out AUROC':>16}{'known unknown':>15}"
              f"{'strangers unknown':>19}{'  (fold thresholds: known, strangers)'}"]
    for name in OPEN_SET_MODELS:
        f = open_[name]
        held = f["held_out_auroc"]
        before = (f"  ({f['known_unknown_fold_thresholds']:.0%}, "
                  f"{f.get('strangers_unknown_fold_thresholds', float('nan')):.0%})"
                  if "known_unknown_fold_thresholds" in f else "")
        lines.append(f"{MODELS[name]:<24}{f.get('auroc', float('nan')):>7.3f}"
                     f"{held if held is not None else float('nan'):>16.3f}"
                     f"{f['known_unknown']:>15.0%}"
                     f"{f.get('strangers_unknown', float('nan')):>19.0%}{before}")
    return "\n".join(lines)
