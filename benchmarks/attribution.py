"""Author attribution: the LSTM configs against the n-gram baseline, on seen and unseen documents.

Trains each variant with ``toolkit train`` (the configs' own ``train.max_minutes``
budgets and ``train.patience``), then runs ``toolkit evaluate --unseen-author`` on
its test split. That report holds, at passage and at document level (a document's
passages pooled): the LSTM (raw and calibrated on validation), the character
2-4-gram tf-idf + logistic-regression baseline trained on exactly the same training
passages, and the ensemble stacking both on validation; the expected calibration
error; the AUROC of telling a held-out author's passages from known ones, and of
telling texts of authors the run never trained on (``strangers``) from the test
split's. Writes ``OUT/attribution.json`` and prints Markdown tables (``--table``
prints them again).

Variants on NLTK's Gutenberg selection: ``region`` splits every book 70 / 10 / 20
(train / validation / test); ``document`` holds out one whole book of each of
Austen, Chesterton and Shakespeare (the authors with several books). The
``finetune-region`` and ``lms-finetune-region`` variants first train ``pretrain`` (configs/gutenberg-pretrain-char.toml,
the same first 70 % of every book); there is no Gutenberg finetune row for the
document split, where that language model would have read the held-out books.
``lms-region-strangers`` trains ``lms-region`` without Chesterton and Whitman
(``sequences.split.unseen_authors``): a true leave-these-authors-out test of "unknown".
Variants ``inaugural-*``: NLTK's inaugural addresses, one whole speech of each of the
18 speakers with two or more held out; ``inaugural-finetune`` starts from ``pretrain``
(Gutenberg books, which share no text with the speeches); the ``-pretrain`` variants
add ``[pretrain]`` (in-corpus pretraining, docs/benchmarks.md).

    NLTK_DATA=../shared/nltk_data python benchmarks/attribution.py --out runs/bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DOCUMENT_SPLIT = ['corpus.include=["austen-*", "chesterton-*", "shakespeare-*"]',
                  "sequences.split.by=document", "train.max_minutes=6"]

IN_CORPUS = ["pretrain.epochs=30", "pretrain.max_minutes=4"]

VARIANTS = {  # in the order they run: the region figures first
    "words-region": ("configs/gutenberg-authors-words.toml", []),
    "lms-region": ("configs/gutenberg-authors-lms.toml", []),
    "lms-region-strangers": ("configs/gutenberg-authors-lms.toml",
                             ['sequences.split.unseen_authors=["chesterton", "whitman"]']),
    "char-region": ("configs/gutenberg-authors-char.toml", []),
    "pretrain": ("configs/gutenberg-pretrain-char.toml", []),
    "finetune-region": ("configs/gutenberg-authors-finetune.toml", ["init.run={pretrain}"]),
    "lms-finetune-region": ("configs/gutenberg-authors-lms-finetune.toml",
                            ["init.run={pretrain}"]),
    "words-document": ("configs/gutenberg-authors-words.toml", DOCUMENT_SPLIT),
    "lms-document": ("configs/gutenberg-authors-lms-documents.toml", []),
    "char-document": ("configs/gutenberg-authors-char.toml", DOCUMENT_SPLIT),
    # Inaugural addresses: one whole speech per speaker held out (18 speakers).
    "inaugural-lms": ("configs/inaugural-authors-lms.toml", []),
    "inaugural-char": ("configs/inaugural-authors-char.toml", []),
    "inaugural-finetune": ("configs/inaugural-authors-finetune.toml", ["init.run={pretrain}"]),
    # The same with [pretrain]: the core first reads the training speeches and the
    # left-out ones (presidents with one speech) as a language model.
    "inaugural-lms-pretrain": ("configs/inaugural-authors-lms.toml", IN_CORPUS),
    "inaugural-finetune-pretrain": ("configs/inaugural-authors-finetune.toml",
                                    ["init.run={pretrain}", *IN_CORPUS]),
}
MODELS = (("lstm", "LSTM"), ("lstm_calibrated", "LSTM, calibrated"),
          ("baseline", "n-grams"), ("ensemble", "ensemble"))


def toolkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "toolkit.cli", *args], check=True)


def table(summary: dict) -> str:
    """Markdown: per variant and model, passage accuracy / macro-F1, document accuracy, ECE."""
    lines = ["| variant | minutes | test passages / documents | model | accuracy | macro-F1 "
             "| document accuracy | ECE |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in summary.items():
        for key, label in MODELS:
            r = e.get(key)
            if r is None:
                continue
            documents = r.get("documents", {})
            lines.append(f"| {name} | {e['training_minutes']} | {e['passages']} / "
                         f"{documents.get('count', '')} | {label} | {r['accuracy']} "
                         f"| {r['macro_f1']} | {documents.get('accuracy', '')} "
                         f"| {r.get('ece', '')} |")
    lines += ["", "| variant | strangers (documents / passages) | model | AUROC passages "
                  "| AUROC documents | strangers' documents answered unknown | known documents "
                  "answered unknown |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, e in summary.items():
        strangers = e.get("strangers")
        for model in ("lstm", "ensemble") if strangers else ():
            if "documents" not in strangers.get(model, {}):
                continue
            passages, documents = strangers[model]["passages"], strangers[model]["documents"]
            lines.append(f"| {name} | {', '.join(strangers['authors'][:3])}"
                         f"{' ...' if len(strangers['authors']) > 3 else ''} "
                         f"({strangers['documents']} / {strangers['passages']}) | {model} "
                         f"| {passages['auroc']} | {documents['auroc']} "
                         f"| {documents['strangers_unknown']} | {documents['known_unknown']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="folder for the runs")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run")
    parser.add_argument("--table", action="store_true",
                        help="print the table of OUT/attribution.json and train nothing")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the variants' existing runs again (calibration "
                             "refitted), without training")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "attribution.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for name in [] if args.table else (args.only or VARIANTS):
        config, overrides = VARIANTS[name]
        run_dir = out / name
        sets = [f"--set={o.format(pretrain=out / 'pretrain')}" for o in overrides]
        entry = summary.get(name, {}) if args.evaluate_only else {}
        if not args.evaluate_only:
            start = time.perf_counter()
            toolkit("train", config, "--run-dir", str(run_dir), "--overwrite", *sets)
            entry["wall_minutes"] = round((time.perf_counter() - start) / 60, 2)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        entry.update(config=config, overrides=overrides,
                     training_minutes=metrics["training_minutes"],
                     epochs=metrics["epochs_done"])
        entry["kept"] = metrics.get("kept")
        if name != "pretrain":
            if args.evaluate_only:  # runs trained before: fit with this toolkit's code
                toolkit("calibrate", str(run_dir))
            toolkit("evaluate", str(run_dir), "--unseen-author")
            report = json.loads((run_dir / "evaluation.json").read_text())
            entry.update(passages=report["passages"],
                         **{key: report[key] for key, _ in MODELS if key in report},
                         **{key: report.get(key) for key in
                            ("calibration", "unseen_author", "unseen_author_ensemble",
                             "strangers")})
        else:
            entry["validation"] = metrics["validation"]
        summary[name] = entry
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    print(table(summary))
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
