#!/usr/bin/env bash
# On a machine with one or more NVIDIA GPUs: confirm that training takes Keras's cuDNN LSTM
# path, then measure single-GPU training throughput (and, with two GPUs or more, a
# mirrored run over all of them). About 10 minutes; nothing is written outside $OUT.
#
#   OUT=/tmp/gpu-bench TOOLKIT_DATA=../shared/corpora bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2 TOOLKIT_DATA="${TOOLKIT_DATA:-../shared/corpora}"
OUT="${OUT:-/tmp/gpu-bench}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"

# 1. The cuDNN path: with documents joined (no per-row resets) the core is Keras's LSTM on
#    a GPU, and its compiled training step holds a CudnnRNN kernel; with resets it runs
#    the toolkit's own loop (cuDNN cannot zero one row mid-sequence).
python - <<'EOF' | tee "$OUT/cudnn.json"
import json
from toolkit.backend import load_tensorflow, gpu_available
load_tensorflow()
import numpy as np, tensorflow as tf
from toolkit.config.schema import build_components, load
from toolkit.model.assembly import build_model, compile_model
from toolkit.plugins import registry

report = {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}
assert gpu_available(), "no GPU visible to TensorFlow"
for documents in ("joined", "separate"):
    resolved = load("configs/shakespeare-char.toml", registry(),
                    [f"sequences.documents={documents}", "train.cache=false"])
    components = build_components(resolved, registry())
    model = build_model(components, 65, 64, stateful=True)
    compile_model(model, components, resolved["train"])
    layer = model.get_layer("core_lstm_0")
    x = np.random.randint(1, 65, (64, 100)).astype("int32")
    spec = tf.TensorSpec(x.shape, tf.int32)
    specs = {"tokens": spec, "resets": tf.TensorSpec(x.shape, tf.float32)} \
        if documents == "separate" else spec
    graph = tf.function(lambda inputs: model(inputs, training=True)).get_concrete_function(
        specs).graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    report[documents] = {"fast_loop": layer.uses_fast_loop,
                         "cudnn_ops": sorted(o for o in ops if "Cudnn" in o)}
print(json.dumps(report))
EOF

# 2. Single-GPU throughput: the toolkit (joined, and with per-row resets) against Keras's
#    own LSTM, 256 and 512 units, characters per second (medians of 3 rounds).
python benchmarks/speed.py --units 256 512 --batches 100 --rounds 3 --skip generation \
    | tee "$OUT/speed.jsonl"

# 3. Every GPU of this machine, mirrored: the same config, one epoch's first 300 steps.
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    python -m toolkit.cli train configs/shakespeare-char.toml --run-dir "$OUT/mirrored" \
        --overwrite --set train.distribute=mirrored --set train.epochs=1 \
        --set sequences.batch_size=256 2>&1 | tail -3 | tee "$OUT/mirrored.txt"
    python -m toolkit.cli train configs/shakespeare-char.toml --run-dir "$OUT/single" \
        --overwrite --set train.epochs=1 --set sequences.batch_size=256 2>&1 | tail -3 \
        | tee "$OUT/single.txt"
fi
echo "results in $OUT"
