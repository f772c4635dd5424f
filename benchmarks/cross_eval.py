"""Evaluate trained runs under both validation protocols, so that builders compare fairly.

The `stream` protocol carries the state through the whole validation text (64 streams,
state reset once at the start): every character is predicted from everything before
it in its stream. The `windows` protocol scores the second half of half-overlapping
40-character windows, each read from a zero state: 20 to 39 characters of context.
Both give nats per character over the same validation split.

    python benchmarks/cross_eval.py runs/bench/stream runs/bench/windows
"""

from __future__ import annotations

import json
import math
import sys

from toolkit.data.prepare import prepare_config
from toolkit.default_plugins.heads import GeneratorHead
from toolkit.default_plugins.sequences import StreamBuilder, WindowBuilder
from toolkit.model.assembly import build_model
from toolkit.runs.rundir import Run
from toolkit.model.state import reset_states

PROTOCOLS = {"stream": StreamBuilder(batch_size=64, length=100),
             "windows": WindowBuilder(batch_size=128, length=40)}


def evaluate(run_dir: str) -> dict:
    run = Run.open(run_dir)
    components = run.components
    prepared = prepare_config(components, run.config, run.vocab)
    trained = run.model
    results = {}
    for name, builder in PROTOCOLS.items():
        model = build_model(components, len(prepared.vocab), builder.batch_size,
                            builder.stateful)
        model.set_weights(trained.get_weights())
        head = GeneratorHead()
        model.compile(loss=head.loss(), weighted_metrics=head.metrics())
        reset_states(model)
        data = builder.validation(prepared.val_ids).dataset()
        perplexity = model.evaluate(data, verbose=0, return_dict=True)["perplexity"]
        results[name] = round(math.log(perplexity), 4)
    return results


def main() -> int:
    results = {run: evaluate(run) for run in sys.argv[1:]}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
