"""Per-author offsets for an author-LMs run: none, fitted on validation, or on the test passages.

For a trained author-lms run, recompute the calibration three ways from the run's own
passage scores and report each on the test split (passage accuracy, macro-F1,
document accuracy, expected calibration error) beside its validation NLL. The third
way (Bagnall's transductive normalisation: each author's mean log-likelihood per
character over the texts being attributed) is also a row of ``toolkit evaluate``'s report.

A second table stacks the LSTM with the character n-gram baseline (weights fitted on
validation, as ``toolkit evaluate``'s ensemble) two ways: the LSTM calibrated with
offsets from validation, and every split normalised on itself (validation's own
offsets where the temperature and the weights are fitted, the test passages' own where
they are applied).

    NLTK_DATA=../shared/nltk_data python benchmarks/normalisation.py runs/inaugural-authors-lms
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an author-lms run directory")
    args = parser.parse_args()

    from toolkit.attribution.attribute import Attributor, real_tokens
    from toolkit.attribution.calibration import Calibration, fit_temperature, nll
    from toolkit.attribution.evaluate import model_report, prepared_data
    from toolkit.runs.rundir import Run

    run = Run.open(args.run)
    prepared, builder, labels = prepared_data(run), run.builder, run.labels
    attributor = Attributor(run)
    validation = builder.data(prepared.splits["validation"], labels)
    test = builder.data(prepared.splits["test"], labels)
    val_scores, test_scores = (attributor.passage_scores(validation.ids),
                               attributor.passage_scores(test.ids))
    val_tokens, test_tokens = real_tokens(validation.ids), real_tokens(test.ids)
    ways = {"none": np.zeros(len(labels)),
            "from validation": (val_scores / val_tokens[:, None]).mean(axis=0),
            "from the test passages": (test_scores / test_tokens[:, None]).mean(axis=0)}
    print("| offsets | accuracy | macro-F1 | documents | ECE | validation NLL |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, offsets in ways.items():
        calibration = Calibration([float(o) for o in offsets])
        calibration.temperature = fit_temperature(
            calibration.centred(val_scores, val_tokens), validation.labels)
        report = model_report(calibration.log_probs(test_scores, test_tokens), test, labels)
        val_nll = nll(calibration.log_probs(val_scores, val_tokens), validation.labels)
        print(f"| {name} | {report['accuracy']} | {report['macro_f1']} "
              f"| {report['documents']['accuracy']} | {report['ece']} | {val_nll:.3f} |")
    stacking(run, builder, prepared, labels, (validation, val_scores, val_tokens),
             (test, test_scores, test_tokens))
    return 0


def stacking(run, builder, prepared, labels, validation, test) -> None:
    from toolkit.attribution.attribute import calibrate, passage_texts
    from toolkit.attribution.calibration import fit_stack, fit_temperature, log_softmax, stacked
    from toolkit.attribution.evaluate import model_report
    from toolkit.attribution.ngrams import fit_ngram, ngram_log_probs

    (val, val_scores, val_tokens), (test, test_scores, test_tokens) = validation, test
    train = builder.data(prepared.splits["train"], labels, training=True)
    ngram = fit_ngram(passage_texts(run, train.ids), train.labels, train.weights)
    ngram_val, ngram_test = (ngram_log_probs(ngram, passage_texts(run, p.ids), len(labels))
                             for p in (val, test))

    def on_itself(scores, tokens):
        offsets = (scores / tokens[:, None]).mean(axis=0)
        return scores - offsets[None, :] * tokens[:, None]

    calibration = calibrate(run.head, val_scores, val)
    temperature = fit_temperature(on_itself(val_scores, val_tokens), val.labels)
    ways = {"calibrated on validation (toolkit evaluate's ensemble)":
            (calibration.log_probs(val_scores, val_tokens),
             calibration.log_probs(test_scores, test_tokens)),
            "every split normalised on itself":
            (log_softmax(on_itself(val_scores, val_tokens) / temperature),
             log_softmax(on_itself(test_scores, test_tokens) / temperature))}
    print("\n| LSTM part of the ensemble | weights (LSTM, n-grams) | accuracy | macro-F1 "
          "| documents | ECE |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (lstm_val, lstm_test) in ways.items():
        weights = fit_stack([lstm_val, ngram_val], val.labels)
        report = model_report(stacked([lstm_test, ngram_test], weights), test, labels)
        print(f"| {name} | {weights[0]:.2f}, {weights[1]:.2f} | {report['accuracy']} "
              f"| {report['macro_f1']} | {report['documents']['accuracy']} | {report['ece']} |")


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
