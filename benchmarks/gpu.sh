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

# 1. The cuDNN path: every shipped stream config, with its default layout (documents
#    aligned to windows: rows zeroed between batches, no per-step resets), must hold a
#    CudnnRNN kernel in its compiled training step; "separate" (per-step resets) runs the
#    toolkit's own loop instead and is shown for contrast. Fails if any config lacks cuDNN.
python - <<'EOF' | tee "$OUT/cudnn.json"
import json
from toolkit.backend import load_tensorflow, gpu_available
load_tensorflow()
import numpy as np, tensorflow as tf
from toolkit.config.schema import build_components, load
from toolkit.config.shipped import copy_config, shipped
from toolkit.model.assembly import build_model, compile_model, layers_of
from toolkit.plugins import registry

report = {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")], "configs": {}}
assert gpu_available(), "no GPU visible to TensorFlow"
names = [n for n, text in shipped().items()
         if 'use = "stream"' in text.split("[sequences]", 1)[-1].split("[", 1)[0]]
missing = []
for name in names:
    for documents in ("default", "separate"):
        path = copy_config(name, f"/tmp/gpu-{name}.toml", force=True)
        extra = [] if documents == "default" else ['sequences.documents="separate"']
        resolved = load(str(path), registry(), ["train.cache=false", *extra])
        components = build_components(resolved, registry())
        batch = components.sequences.batch_size
        model = build_model(components, 65, batch, stateful=True)
        compile_model(model, components, resolved["train"])
        tokens = tf.TensorSpec((batch, 100), tf.int32)
        specs = {k: (tokens if k == "tokens" else tf.TensorSpec(
                     (batch,) if k == "starts" else (batch, 100), tf.float32))
                 for k in model.input} if isinstance(model.input, dict) else tokens
        graph = tf.function(lambda inputs: model(inputs, training=True)).get_concrete_function(
            specs).graph.as_graph_def()
        ops = {node.op for node in graph.node}
        ops |= {node.op for function in graph.library.function for node in function.node_def}
        cudnn = sorted(o for o in ops if "Cudnn" in o)
        report["configs"][f"{name} ({documents})"] = {
            "layout": resolved["sequences"]["documents"], "cudnn_ops": cudnn,
            "fast_loop": [layer.uses_fast_loop for layer in layers_of(model, ("core",))
                          if hasattr(layer, "uses_fast_loop")]}
        if documents == "default" and not cudnn:
            missing.append(name)
print(json.dumps(report))
assert not missing, f"no cuDNN kernel in the training step of {missing}"
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
