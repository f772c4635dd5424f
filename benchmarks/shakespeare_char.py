"""Validation loss after 10 and 30 minutes of CPU training: stateful streams vs windows.

Trains configs/shakespeare-char.toml twice, each for ``--minutes`` of training time:
once as written (``stream``), once with the stateless ``windows`` builder on the same
model (1x256 LSTM, embedding 64, batch 64; windows of 40 characters every 3). Reads
each run's history.csv and prints the validation loss (nats/char) of the best epoch
finished within 10 and within 30 minutes, and the median training throughput.

    TOOLKIT_DATA=../shared/corpora python benchmarks/shakespeare_char.py --out runs/bench
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "stream": [],
    "windows": ["sequences.use=windows", "sequences.length=40", "sequences.step=3"],
}


def best_within(history: Path, minutes: float) -> float | None:
    with history.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if float(r["elapsed_minutes"]) <= minutes]
    values = [math.log(float(r["val_perplexity"])) for r in rows]
    return round(min(values), 4) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench", help="folder for the runs")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--only", choices=sorted(VARIANTS))
    args = parser.parse_args()
    results = {}
    for name, overrides in VARIANTS.items():
        if args.only and name != args.only:
            continue
        run = Path(args.out) / name
        command = [sys.executable, "-m", "toolkit.cli", "train", "configs/shakespeare-char.toml",
                   "--run-dir", str(run), "--set", f"train.max_minutes={args.minutes}"]
        for item in overrides:
            command += ["--set", item]
        if not (run / "metrics.json").is_file():
            subprocess.run(command, check=True)
        history = run / "history.csv"
        with history.open(newline="") as f:
            rates = [float(r["tokens_per_second"]) for r in csv.DictReader(f)]
        results[name] = {
            "val_nats_within_10_min": best_within(history, 10),
            "val_nats_within_30_min": best_within(history, 30),
            "epochs": len(rates),
            "train_tokens_per_second_median": round(statistics.median(rates)),
        }
        print(name, json.dumps(results[name]), flush=True)
    name = f"shakespeare_char_{args.only}.json" if args.only else "shakespeare_char.json"
    (Path(args.out) / name).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
