"""Per-author offsets for an author-LMs run: none, fitted on validation, or on the test passages.

For a trained author-lms run, recompute the calibration three ways from the run's own
passage scores and report each on the test split (passage accuracy, macro-F1,
document accuracy, expected calibration error) beside its validation NLL. The third
way (Bagnall's transductive normalisation: each author's mean log-likelihood per
character over the texts being attributed) is also a row of ``toolkit evaluate``'s report.

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

    from toolkit.attribution import Attributor, real_tokens
    from toolkit.calibration import Calibration, fit_temperature, nll
    from toolkit.evaluate import model_report, prepared_data
    from toolkit.runs import Run

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
