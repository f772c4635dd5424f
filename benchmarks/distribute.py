"""What ``train.distribute = "mirrored"`` costs per step: one device against two replicas.

Trains the same stateful character model (tiny-shakespeare, 256 units, batch 64 x 100,
documents kept apart; ``--xla on`` compiles the one-device step with XLA, which the
mirrored step never is: it fails to compile under the strategy) for ``--batches`` batches per round, rounds
alternating, from the same weights: once on one device, once mirrored over the logical
devices of ``TOOLKIT_CPU_DEVICES`` (default 2; set here before TensorFlow starts). On a
CPU the logical devices share the same cores, so this measures the overhead of the
distributed step (the per-replica input pipeline, the gradient all-reduce, the
per-replica state), not a speed-up; on a machine with several GPUs the same script
measures the speed-up (set ``TOOLKIT_CPU_DEVICES=1``).

    TOOLKIT_DATA=../shared/corpora python benchmarks/distribute.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TOOLKIT_CPU_DEVICES", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from toolkit.backend import load_tensorflow  # noqa: E402

load_tensorflow()

import keras  # noqa: E402

from toolkit.config.schema import build_components, load  # noqa: E402
from toolkit.data.prepare import prepare_config  # noqa: E402
from toolkit.training.distribute import distributed_dataset, keep_state_per_replica, make_strategy  # noqa: E402
from toolkit.model.assembly import build_model, compile_model  # noqa: E402
from toolkit.plugins import registry  # noqa: E402


class FirstBatches:
    """The first ``count`` batches of an epoch's data, as the toolkit's datasets read them."""

    def __init__(self, data, count: int):
        self.data, self.count = data, count
        self.batch_rows, self.length = data.batch_rows, data.length

    def __len__(self):
        return self.count

    def __getitem__(self, k):
        return self.data[k]

    def signature(self):
        return self.data.signature()

    def dataset(self):
        return type(self.data).dataset(self)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--xla", choices=["on", "off"], default="off",
                        help="compile both training steps with XLA")
    args = parser.parse_args()
    resolved = load("configs/shakespeare-char.toml", registry(),
                    ["core.units=256", f"train.xla={args.xla}"])
    components = build_components(resolved, registry())
    prepared = prepare_config(components, resolved)
    builder = components.sequences
    data = builder.training(builder.data(prepared.splits["train"], training=True), seed=1)
    vocab = len(prepared.vocab)
    strategy = make_strategy("mirrored")
    replicas = strategy.num_replicas_in_sync
    keras.utils.set_random_seed(1)
    single = build_model(components, vocab, builder.batch_size, True)
    compile_model(single, components, resolved["train"])
    with strategy.scope():
        mirrored = build_model(components, vocab, builder.batch_size // replicas, True)
        compile_model(mirrored, components, resolved["train"])
        keep_state_per_replica(mirrored)
    mirrored.set_weights(single.get_weights())
    first = FirstBatches(data, args.batches)
    contenders = {"one_device": (single, first.dataset),
                  f"mirrored_{replicas}": (mirrored, lambda: distributed_dataset(first, strategy))}

    def speed(model, dataset):
        start = time.perf_counter()
        model.fit(dataset(), epochs=1, verbose=0, shuffle=False)
        return args.batches * builder.batch_size * builder.length / (time.perf_counter() - start)

    for model, dataset in contenders.values():  # warm-up: tracing
        speed(model, dataset)
    figures = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (model, dataset) in contenders.items():
            figures[name].append(speed(model, dataset))
    row = {name: round(statistics.median(values)) for name, values in figures.items()}
    row.update({f"{name}_all": [round(v) for v in values] for name, values in figures.items()})
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    raise SystemExit(main())
