#!/usr/bin/env bash
# Every figure in docs/benchmarks.md, one after the other (about 3 hours on 2 cores).
# Run on an otherwise idle machine: the figures are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOOLKIT_DATA="${TOOLKIT_DATA:-../shared/corpora}" NLTK_DATA="${NLTK_DATA:-../shared/nltk_data}"
export TF_CPP_MIN_LOG_LEVEL=2
out=${1:-runs/bench}
mkdir -p "$out"
# The machine every figure below comes from: CPU model (lscpu), cores, load, versions.
python benchmarks/machine.py | tee "$out/machine.txt"
python benchmarks/shakespeare_char.py --out "$out" --only stream
python benchmarks/generation_speed.py "$out/stream" | tee "$out/generation_speed.json"
python benchmarks/shakespeare_char.py --out "$out" --only windows
# The two builders under both validation protocols (docs/benchmarks.md, the cross table).
python benchmarks/cross_eval.py "$out/stream" "$out/windows" | tee "$out/cross_eval.json"
# Training and generation speed: the toolkit on TensorFlow and on JAX, and a plain PyTorch
# loop, each in its own process (the `bench` and `jax` extras; torch's CPU wheel).
python benchmarks/speed.py --units 256 512 --batches 30 --rounds 3 | tee "$out/speed.jsonl"
# The padding of aligned documents on every shipped corpus (issue 27's default layout).
python benchmarks/padding.py | tee "$out/padding.md"
# tiny-shakespeare within 30 minutes (issue 27's quality target), with the shipped config.
python -m toolkit.cli train configs/shakespeare-char-30min.toml --run-dir "$out/30min" --overwrite
python benchmarks/preprocess_speed.py | tee "$out/preprocess_speed.json"
python -m toolkit.cli train configs/austen-words.toml --run-dir "$out/austen-words" --overwrite
python -m toolkit.cli generate "$out/austen-words" --seed 1 > "$out/austen-words.txt"
python -m toolkit.cli generate "$out/stream" --seed 1 > "$out/shakespeare-char.txt"
# Attribution on the Gutenberg selection (about 90 minutes more): three LSTM configs and a
# word-level one against the character n-gram baseline, region and document splits.
python benchmarks/attribution.py --out "$out" | tee "$out/attribution.md"
# Attribution on unseen documents, cross-validated (about 80 minutes): every model with
# its 95 % interval over documents, paired against the best classic baseline.
python benchmarks/crossval.py --out "$out" | tee "$out/crossval.md"
# Per-author offsets three ways, on the inaugural addresses' per-author LMs.
python benchmarks/normalisation.py "$out/inaugural-lms" | tee "$out/normalisation.md"
# Scale (issue 13): a 1 GB corpus (written to /tmp), and one device against two replicas.
python benchmarks/scale.py | tee "$out/scale.jsonl"
python benchmarks/distribute.py | tee "$out/distribute.json"
# Serving (issue 25): 1, 8, 32 and 64 concurrent clients and a fuzz phase against
# `toolkit serve` with the quick start's model (trained into runs/tiny when missing).
python benchmarks/serve_load.py runs/tiny | tee "$out/serve_load.jsonl"
# The GPU path, where there is one (benchmarks/gpu.sh asserts the cuDNN kernel).
if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    OUT="$out/gpu" bash benchmarks/gpu.sh
else
    echo "run_all: no GPU here; benchmarks/gpu.sh skipped (the GPU path stays unmeasured)"
fi
