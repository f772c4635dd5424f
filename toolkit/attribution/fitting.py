"""What an attribution run fits on its own data once it is trained: the calibration (on
the validation split) and the ensemble (the character n-gram model and the Deltas on
the training passages, stacked with the calibrated LSTM by weights fitted on
validation: the members ``[ensemble]`` names).

``toolkit train`` fits both at its end and ``toolkit calibrate RUN`` fits them again
(``calibration.json``, ``ensemble.pkl``); ``toolkit evaluate`` and ``toolkit attribute``
only read them.
"""

from __future__ import annotations

import json
import pickle
import time

from toolkit.attribution.attribute import (Attributor, calibrate, member_log_probs,
                                           passage_texts, real_tokens)
from toolkit.attribution.calibration import fit_stack
from toolkit.attribution.delta import DISTANCES, fit_delta
from toolkit.attribution.ngrams import fit_ngram
from toolkit.data.prepare import prepare_config
from toolkit.errors import ToolkitError
from toolkit.runs import rundir as runs
from toolkit.runs.rundir import Run


def prepared_data(run: Run):
    """The run's splits, rebuilt from its config and vocabulary and checked against split.json."""
    prepared = prepare_config(run.components, run.config, run.vocab)
    stored = run.file(runs.SPLIT)
    if stored.is_file():
        recorded = json.loads(stored.read_text())
        for name, split in prepared.splits.items():
            if recorded.get(name, split.places) != split.places:
                raise ToolkitError(f"the {name} split rebuilt from {run.path}'s config differs "
                                   f"from its {runs.SPLIT}: the corpus changed since training, "
                                   f"so the report would not be about held-out text")
    return prepared


def fit_run(run_dir, prepared=None) -> dict:
    """Fit the run's calibration and ensemble on its validation split and write them
    (``calibration.json``, ``ensemble.pkl``); returns what was fitted. ``prepared``: the
    run's data when the caller has it (training does)."""
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    attributor = Attributor(run)
    prepared = prepared if prepared is not None else prepared_data(run)
    if not len(prepared.splits.get("validation", ())):
        raise ToolkitError(f"{run.path} has no validation split to fit the calibration and "
                           f"the ensemble on; train it with train.validation_fraction > 0")
    labels, builder = attributor.labels, run.builder
    validation = builder.data(prepared.splits["validation"], labels)
    val_scores = attributor.passage_scores(validation.ids)
    calibration = calibrate(run.head, val_scores, validation)
    runs.write_json(run.file(runs.CALIBRATION), calibration.to_json())
    train = builder.data(prepared.splits["train"], labels, training=True)
    ensemble = fit_members(run, train, validation)
    lstm_val = calibration.log_probs(val_scores, real_tokens(validation.ids))
    members = run.config.ensemble.members
    parts = [member_log_probs(run, ensemble, name, validation.ids, lstm_val) for name in members]
    ensemble["weights"] = fit_stack(parts, validation.labels)
    runs.atomic_write(run.file(runs.ENSEMBLE), pickle.dumps(ensemble))
    return {"calibration": calibration.to_json(),
            "ensemble": {"weights": dict(zip(members, (round(w, 4) for w in ensemble["weights"]))),
                         "ngram_training_seconds": ensemble.pop("ngram_training_seconds"),
                         "validation_passages": len(validation)}}


def fit_members(run: Run, train, validation) -> dict:
    """The classic models fitted on the training passages (``train``): the character
    n-grams and both Deltas (temperatures on ``validation``), by the names
    :func:`~toolkit.attribution.attribute.member_log_probs` reads."""
    labels, settings = run.labels, run.config.ensemble
    train_texts = passage_texts(run, train.ids)
    validation_texts = passage_texts(run, validation.ids)
    start = time.perf_counter()
    ngram = fit_ngram(train_texts, train.labels, train.weights)
    seconds = time.perf_counter() - start
    deltas = {distance: fit_delta(distance, train_texts, train.labels, validation_texts,
                                  validation.labels, len(labels), settings.delta_words)
              for distance in DISTANCES}
    return {"labels": labels, "members": list(settings.members), "ngram": ngram,
            "delta": deltas, "ngram_training_seconds": round(seconds, 1)}

