#!/usr/bin/env bash
# Every figure in docs/benchmarks.md, one after the other (about 3 hours on 2 cores).
# Run on an otherwise idle machine: the figures are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOOLKIT_DATA="${TOOLKIT_DATA:-../shared/corpora}" NLTK_DATA="${NLTK_DATA:-../shared/nltk_data}"
export TF_CPP_MIN_LOG_LEVEL=2
out=${1:-runs/bench}
mkdir -p "$out"
python benchmarks/shakespeare_char.py --out "$out" --only stream
python benchmarks/generation_speed.py "$out/stream" | tee "$out/generation_speed.json"
python benchmarks/shakespeare_char.py --out "$out" --only windows
python benchmarks/preprocess_speed.py | tee "$out/preprocess_speed.json"
python -m toolkit.cli train configs/austen-words.toml --run-dir "$out/austen-words" --overwrite
python -m toolkit.cli generate "$out/austen-words" --seed 1 > "$out/austen-words.txt"
python -m toolkit.cli generate "$out/stream" --seed 1 > "$out/shakespeare-char.txt"
# Attribution on the Gutenberg selection (about 90 minutes more): three LSTM configs and a
# word-level one against the character n-gram baseline, region and document splits.
python benchmarks/attribution.py --out "$out" | tee "$out/attribution.md"
# Scale (issue 13): a 1 GB corpus (written to /tmp), and one device against two replicas.
python benchmarks/scale.py | tee "$out/scale.jsonl"
python benchmarks/distribute.py | tee "$out/distribute.json"
