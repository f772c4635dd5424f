"""Author attribution on NLTK's Gutenberg selection: the three LSTM configs vs the n-gram baseline.

Trains each variant with ``toolkit train`` (the configs' own ``train.max_minutes``
budgets: 10 to 15 minutes; 6 for the document split; about 90 minutes in all), then runs ``toolkit evaluate`` on its test split, which also trains the
character 2-4-gram tf-idf + logistic-regression baseline on exactly the same
training passages. Writes ``OUT/attribution.json`` and prints a Markdown table.

The ``words`` variants use configs/gutenberg-authors-words.toml (a word-level
classifier). Variants: ``region`` splits every book 70 / 10 / 20 (train / validation / test);
``document`` holds out one whole book of each of Austen, Chesterton and Shakespeare
(the authors with several books). The finetune variant first trains
configs/gutenberg-pretrain-char.toml, whose training text is the same first 70 %
of every book; it is skipped for the document split, where that language model
would have read the held-out books.

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

VARIANTS = {  # in the order they run: the region figures first
    "words-region": ("configs/gutenberg-authors-words.toml", []),
    "lms-region": ("configs/gutenberg-authors-lms.toml", []),
    "char-region": ("configs/gutenberg-authors-char.toml", []),
    "pretrain": ("configs/gutenberg-pretrain-char.toml", []),
    "finetune-region": ("configs/gutenberg-authors-finetune.toml", ["init.run={pretrain}"]),
    "words-document": ("configs/gutenberg-authors-words.toml", DOCUMENT_SPLIT),
    "lms-document": ("configs/gutenberg-authors-lms.toml", DOCUMENT_SPLIT),
    "char-document": ("configs/gutenberg-authors-char.toml", DOCUMENT_SPLIT),
}


def toolkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "toolkit.cli", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="folder for the runs")
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "attribution.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for name in args.only or VARIANTS:
        config, overrides = VARIANTS[name]
        run_dir = out / name
        sets = [f"--set={o.format(pretrain=out / 'pretrain')}" for o in overrides]
        start = time.perf_counter()
        toolkit("train", config, "--run-dir", str(run_dir), "--overwrite", *sets)
        wall = time.perf_counter() - start
        metrics = json.loads((run_dir / "metrics.json").read_text())
        entry = {"config": config, "overrides": overrides, "wall_minutes": round(wall / 60, 2),
                 "training_minutes": metrics["training_minutes"],
                 "epochs": metrics["epochs_done"]}
        if name != "pretrain":
            toolkit("evaluate", str(run_dir))
            report = json.loads((run_dir / "evaluation.json").read_text())
            entry.update(passages=report["passages"], lstm=report["lstm"],
                         baseline=report["baseline"])
        else:
            entry["validation"] = metrics["validation"]
        summary[name] = entry
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    print("| variant | training minutes | epochs | test passages | LSTM accuracy | LSTM macro-F1 "
          "| baseline accuracy | baseline macro-F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, e in summary.items():
        if "lstm" in e:
            print(f"| {name} | {e['training_minutes']} | {e['epochs']} | {e['passages']} "
                  f"| {e['lstm']['accuracy']} | {e['lstm']['macro_f1']} "
                  f"| {e['baseline']['accuracy']} | {e['baseline']['macro_f1']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
