"""Attribution on unseen documents, cross-validated: every model with its interval.

Runs ``toolkit crossval`` on each variant below, every fold within a stated CPU budget
(``train.max_minutes`` per fold), and prints one Markdown table per variant: the LSTM
(raw and calibrated), the character n-grams, Burrows' and Cosine Delta and the
ensembles, each with 95 % bootstrap intervals over documents, each toolkit model
against the best classic baseline (paired interval, McNemar's p on documents), and
the document-level open set. A killed run continues where it stopped (crossval does).

Levers, each measured as its own variant: longer passages (``-long``), and, computed
from the same predictions without training, the ensemble's weights fitted on the
folds (the ``ensemble, fold weights`` row) and how a document's passages are pooled
(``--pooling``: the mean of the passages' log-probabilities, as ``attribute`` does,
against a majority vote of the passages).

    NLTK_DATA=../shared/nltk_data python benchmarks/crossval.py --out runs/bench
    python benchmarks/crossval.py --out runs/bench --only inaugural-lms --table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

VARIANTS = {  # name: (config, folds, minutes per fold, overrides)
    "inaugural-lms": ("configs/inaugural-authors-lms.toml", 5, 4, []),
    "inaugural-char": ("configs/inaugural-authors-char.toml", 5, 2.5, []),
    "gutenberg-lms": ("configs/gutenberg-authors-lms-documents.toml", 3, 5, []),
    "inaugural-lms-long": ("configs/inaugural-authors-lms.toml", 5, 4,
                           ["sequences.length=1140"]),
    # Pretraining on more text: the per-president LMs on a core and embedding from a
    # character LM of the Gutenberg books (which share no text with the speeches).
    "inaugural-lms-pretrained": ("configs/inaugural-authors-finetune.toml", 5, 4,
                                 ["init.run={pretrain}"]),
}
PRETRAIN = ("configs/gutenberg-pretrain-char.toml", 8)  # config, minutes


def pretrained(out: Path) -> Path:
    """The Gutenberg character LM the ``{pretrain}`` variants start from (trained once)."""
    run = out / "pretrain-gutenberg"
    if not (run / "metrics.json").is_file():
        config, minutes = PRETRAIN
        subprocess.run([sys.executable, "-m", "toolkit.cli", "train", config, "--run-dir",
                        str(run), "--resume", "--set", f"train.max_minutes={minutes}"],
                       check=True, stdout=sys.stderr)
    return run


def run_variant(name: str, out: Path) -> dict:
    config, folds, minutes, overrides = VARIANTS[name]
    if any("{pretrain}" in o for o in overrides):
        overrides = [o.replace("{pretrain}", str(pretrained(out).resolve())) for o in overrides]
    sets = [a for o in [f"train.max_minutes={minutes}", *overrides] for a in ("--set", o)]
    command = [sys.executable, "-m", "toolkit.cli", "crossval", config, "--folds", str(folds),
               "--out", str(out / f"crossval-{name}"), *sets]
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=sys.stderr)
    results = json.loads((out / f"crossval-{name}" / "crossval.json").read_text())
    results["variant"] = {"name": name, "config": config, "folds": folds,
                          "minutes_per_fold": minutes, "overrides": overrides,
                          "wall_minutes": round((time.perf_counter() - start) / 60, 1)}
    return results


def vote_pooling(out: Path, name: str) -> dict:
    """Document accuracy when a document's passages vote (ties to the larger summed
    probability) instead of averaging log-probabilities, per model."""
    import numpy as np

    from toolkit.attribution.crossval import pool_folds

    folder = out / f"crossval-{name}"
    folds = [json.loads(p.read_text()) for p in sorted(folder.glob("fold-*/predictions.json"))]
    pooled = pool_folds(folds)
    result = {}
    for model, values in pooled.passages.items():
        votes = np.zeros((len(pooled.documents), values.shape[1]))
        np.add.at(votes, (pooled.passage_documents, values.argmax(axis=1)), 1.0)
        np.add.at(votes, pooled.passage_documents, np.exp(values) * 1e-6)  # ties
        result[model] = round(float((votes.argmax(axis=1) == pooled.document_labels).mean()), 4)
    return result


def table(results: dict, votes: dict) -> str:
    v = results["variant"]
    lines = [f"### {v['name']}: `{v['config']}`, {v['folds']} folds, {v['minutes_per_fold']} "
             f"CPU minutes per fold{', ' + ', '.join(v['overrides']) if v['overrides'] else ''}",
             "",
             f"{results['documents']} documents by {len(results['authors'])} authors, "
             f"{results['passages']} passages; {results['training_minutes']} training minutes "
             f"in all, {v['wall_minutes']} minutes of wall time.",
             "",
             "| model | accuracy [95% CI] | macro-F1 [95% CI] | doc. accuracy [95% CI] | "
             "doc. accuracy, passages voting | ECE |",
             "| --- | --- | --- | --- | --- | --- |"]
    for key, m in results["models"].items():
        d = m["documents"]
        lines.append(f"| {m['name']} | {m['accuracy']:.4f} [{m['accuracy_ci'][0]:.3f}, "
                     f"{m['accuracy_ci'][1]:.3f}] | {m['macro_f1']:.4f} "
                     f"[{m['macro_f1_ci'][0]:.3f}, {m['macro_f1_ci'][1]:.3f}] | "
                     f"{d['accuracy']:.4f} [{d['accuracy_ci'][0]:.3f}, "
                     f"{d['accuracy_ci'][1]:.3f}] | {votes.get(key, float('nan')):.4f} | "
                     f"{m['ece']:.3f} |")
    c = results["comparisons"]
    lines += ["", f"Against the best classic baseline ({c['against_name']}), paired on the same "
                  f"documents:", "",
              "| model | Δ accuracy [95% CI] | Δ doc. accuracy [95% CI] | McNemar (docs) | verdict |",
              "| --- | --- | --- | --- | --- |"]
    for key in (k for k in c if k not in ("against", "against_name")):
        d = c[key]
        m = d["mcnemar_documents"]
        lines.append(f"| {results['models'][key]['name']} | {d['accuracy']:+.4f} "
                     f"[{d['accuracy_ci'][0]:+.3f}, {d['accuracy_ci'][1]:+.3f}] | "
                     f"{d['document_accuracy']:+.4f} [{d['document_accuracy_ci'][0]:+.3f}, "
                     f"{d['document_accuracy_ci'][1]:+.3f}] | {m['a_only']} vs {m['b_only']}, "
                     f"p = {m['p']:.3g} | {d['verdict']} |")
    o = results["open_set"]
    lines += ["", f"Open set: {o['stranger_documents']} documents by "
                  f"{len(o['stranger_authors'])} authors outside the folds, against the "
                  f"{results['documents']} known ones:", "",
              "| model | AUROC | known `unknown` | strangers `unknown` | "
              "the same with each fold's own threshold |",
              "| --- | --- | --- | --- | --- |"]
    for key in ("lstm_calibrated", "ensemble", "ensemble_folds"):
        f = o[key]
        before = (f"{f['known_unknown_fold_thresholds']:.0%} / "
                  f"{f.get('strangers_unknown_fold_thresholds', float('nan')):.0%}"
                  if "known_unknown_fold_thresholds" in f else "-")
        lines.append(f"| {results['models'][key]['name']} | {f.get('auroc', float('nan')):.3f} | "
                     f"{f['known_unknown']:.0%} | {f.get('strangers_unknown', float('nan')):.0%}"
                     f" | {before} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--table", action="store_true",
                        help="print the tables of variants already run, training nothing")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {json.dumps(describe())}\n")
    for name in args.only:
        path = out / f"crossval-{name}" / "benchmark.json"
        if args.table:
            if not path.is_file():
                continue
            results = json.loads(path.read_text())
            results.setdefault("variant", {"name": name, "config": VARIANTS[name][0],
                                           "folds": VARIANTS[name][1],
                                           "minutes_per_fold": VARIANTS[name][2],
                                           "overrides": VARIANTS[name][3], "wall_minutes": "-"})
        else:
            results = run_variant(name, out)
            path.write_text(json.dumps(results, indent=2))
        print(table(results, vote_pooling(out, name)) + "\n", flush=True)


if __name__ == "__main__":
    main()
