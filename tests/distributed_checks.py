"""Run by tests/test_distribute.py in a fresh process whose CPU is split into two logical
devices (``TOOLKIT_CPU_DEVICES=2``, which must be set before TensorFlow starts): each
check prints one JSON line of what it observed, and the tests judge it."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.backend import load_tensorflow  # noqa: E402

load_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from toolkit.training.callbacks import FollowEpochs  # noqa: E402
from toolkit.config.schema import Components  # noqa: E402
from toolkit.default_plugins.cores import LSTMCore  # noqa: E402
from toolkit.default_plugins.encoders import EmbeddingEncoder  # noqa: E402
from toolkit.default_plugins.heads import GeneratorHead  # noqa: E402
from toolkit.default_plugins.sequences import StreamBuilder  # noqa: E402
from toolkit.training.distribute import distributed_dataset, keep_state_per_replica, make_strategy  # noqa: E402
from toolkit.model.assembly import build_model, compile_model  # noqa: E402
from toolkit.splits import Split  # noqa: E402
from toolkit.model.state import get_states, reset_states, set_states  # noqa: E402


def rows_per_replica():
    """Which rows each replica reads at each step of a position-coded three-document stream."""
    strategy = make_strategy("mirrored")
    split = Split([np.arange(300) + 10000 * (d + 1) for d in range(3)], [None] * 3,
                  ["a", "b", "c"])
    builder = StreamBuilder(batch_size=4, length=5, documents="separate")  # per-step resets
    data = builder.training(builder.data(split), seed=1)
    data.set_epoch(2)
    steps = []
    for k, (inputs, _, weights) in enumerate(distributed_dataset(data, strategy)):
        tokens = [np.asarray(t).tolist() for t in strategy.experimental_local_results(
            inputs["tokens"])]
        resets = [np.asarray(t).tolist() for t in strategy.experimental_local_results(
            inputs["resets"])]
        steps.append({"tokens": tokens, "resets": resets,
                      "global": data[k][0]["tokens"].tolist()})
    return {"replicas": strategy.num_replicas_in_sync, "batches": len(data), "steps": steps}


def same_training_on_one_device_and_two():
    """Per-step losses, final weights and final per-row state of the same stateful model
    trained on one device and mirrored on two, from the same weights and batches."""
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 12, size=801).astype(np.int32)
    builder = StreamBuilder(batch_size=4, length=10, offset="none")
    components = Components(None, [], EmbeddingEncoder(4), builder, LSTMCore(8),
                            GeneratorHead())
    # SGD: Adam divides by the root of tiny second moments, which turns float rounding
    # (the order of the replicas' gradient sum) into visible weight differences.
    train = {"optimizer": "sgd", "learning_rate": 0.5, "clipnorm": 5.0, "xla": "off"}

    class Losses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.nats = []

        def on_train_batch_end(self, batch, logs=None):
            self.nats.append(float(logs["nats"]))

    keras.utils.set_random_seed(1)
    single = build_model(components, 12, 4, True)
    compile_model(single, components, train)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        mirrored = build_model(components, 12, 2, True)
        compile_model(mirrored, components, train)
        keep_state_per_replica(mirrored)
    mirrored.set_weights(single.get_weights())
    figures = {}
    for name, model, prepare in (("single", single, lambda d: d.dataset()),
                                 ("mirrored", mirrored,
                                  lambda d: distributed_dataset(d, strategy))):
        data = builder.training(ids, seed=0)
        validation = builder.validation(ids[:401])
        losses = Losses()
        history = model.fit(prepare(data), validation_data=prepare(validation), epochs=2,
                            shuffle=False, verbose=0,
                            callbacks=[FollowEpochs(data), *builder.callbacks(data), losses])
        figures[name] = {"nats": losses.nats, "val_nats": history.history["val_nats"],
                         "weights": [w.tolist() for w in model.get_weights()],
                         "states": [s.tolist() for s in get_states(model)]}
    # the state kept per replica is written back row for row, and reset on every replica
    saved = get_states(mirrored)
    set_states(mirrored, [s[::-1].copy() for s in saved])
    flipped = [np.asarray(s).tolist() for s in get_states(mirrored)]
    reset_states(mirrored)
    zero = all(not np.any(s) for s in get_states(mirrored))
    replica_copies = [len(getattr(v.value, "values", [v])) for v in
                      mirrored.get_layer("core_lstm_0").states]
    return {**figures, "flipped": flipped, "saved": [s.tolist() for s in saved],
            "zero_after_reset": zero, "replica_copies": replica_copies}


if __name__ == "__main__":
    check = {"rows": rows_per_replica, "training": same_training_on_one_device_and_two}
    print(json.dumps(check[sys.argv[1]]()))
