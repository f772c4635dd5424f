"""Training on several devices and machines with ``tf.distribute``, stateful streams included.

``train.distribute = "mirrored"`` trains one replica per local GPU (or per logical CPU
device, see ``TOOLKIT_CPU_DEVICES``); ``"multi-worker"`` one per device on every machine
named in ``TF_CONFIG``. Gradients are summed across replicas as Keras does. What Keras
and ``tf.distribute`` do not do for a stateful model, this module does:

- **rows per replica**: the global batch of ``batch_size`` stream rows is cut into
  equal slices, and replica ``r`` gets rows ``r * b`` to ``(r + 1) * b`` of *every*
  batch (``b = batch_size / replicas``), so each replica's rows continue its own rows
  from the previous batch. Each worker builds only its own replicas' rows
  (:func:`distributed_dataset`);
- **state per replica**: a stateful layer keeps its recurrent state in one variable,
  which replicas would share; :func:`keep_state_per_replica` swaps it for a
  sync-on-read variable, one copy per replica, updated only by that replica and never
  averaged (``toolkit.model.state`` reads and writes the copies one by one);
- **resets everywhere**: zeroing a sync-on-read variable from outside the replicas
  zeroes every copy, so epoch and validation resets reach every replica.
"""

from __future__ import annotations

import functools
import os

from toolkit.backend import load_tensorflow
from toolkit.errors import ConfigError

load_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


@functools.cache
def make_strategy(setting: str) -> tf.distribute.Strategy | None:
    """The strategy ``train.distribute`` names (``None`` for ``"none"``), made once per
    process: two strategies in one process would mix up their collective operations."""
    if setting == "none":
        return None
    if setting == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("train.distribute", "\"multi-worker\" needs the TF_CONFIG "
                                                  "environment variable on every worker (see "
                                                  "docs/scale.md); it is not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def replica_batch(batch_size: int, strategy: tf.distribute.Strategy | None,
                  stateful: bool) -> int:
    """Rows each replica trains per step; a stateful batch must split evenly."""
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    if stateful and batch_size % replicas:
        raise ConfigError("sequences.batch_size", (
            f"{batch_size} stream rows cannot be shared evenly by {replicas} replicas "
            f"(train.distribute); use a multiple of {replicas}"))
    return batch_size // replicas


def keep_state_per_replica(model: keras.Model) -> None:
    """Give every stateful layer of ``model`` (built in the strategy's scope) one state per
    replica: sync-on-read variables in place of the shared ones Keras creates."""
    from toolkit.model.state import stateful_layers

    for layer in stateful_layers(model):
        states = [keras.Variable(np.zeros(tuple(v.shape), v.dtype), trainable=False,
                                 dtype=v.dtype, name="rnn_state", synchronization="on_read",
                                 aggregation="mean") for v in layer.states]
        # Keras makes its state variables untracked (state is not a weight): so are these.
        object.__setattr__(layer, "states", states)


def distributed_dataset(data, strategy: tf.distribute.Strategy | None):
    """``data``'s batches for ``fit`` under ``strategy``: replica ``r`` of ``R`` gets rows
    ``r * b`` to ``(r + 1) * b`` of every batch (``b`` = the batch size / ``R``), so a
    stateful replica continues its own rows. A short last batch (stateless passages) is
    filled up with its own first rows again, at weight 0: replicas must hold as many rows
    each, and rows of padding alone change the shape of the gradients they all-reduce."""
    if strategy is None:
        return data.dataset()
    full = data.batch_rows or data.batch_size
    if full is None:  # a plugin's batches of unknown size: Keras splits them
        return strategy.experimental_distribute_dataset(data.dataset())
    replicas = strategy.num_replicas_in_sync
    rows = -(-full // replicas)

    def slice_rows(part, cut):
        if isinstance(part, dict):
            return {key: slice_rows(value, cut) for key, value in part.items()}
        part = np.asarray(part)
        if len(part) < rows * replicas:  # the short last batch: its first rows again
            part = np.resize(part, (rows * replicas, *part.shape[1:]))
        return part[cut]

    def per_worker(context: tf.distribute.InputContext):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def batches():
            for k in range(len(data)):
                inputs, targets, weights = data[k]
                weights = np.asarray(weights)
                if len(weights) < rows * replicas:  # repeated rows weigh nothing
                    weights = np.concatenate([weights, np.zeros(
                        (rows * replicas - len(weights), *weights.shape[1:]), weights.dtype)])
                for replica in range(first, first + local):
                    cut = slice(replica * rows, (replica + 1) * rows)
                    yield tuple(slice_rows(part, cut) for part in (inputs, targets, weights))

        signature = tf.nest.map_structure(
            lambda spec: tf.TensorSpec((rows, *spec.shape[1:]), spec.dtype), data.signature())
        # No cardinality: Keras would read this worker's len(data) * local elements as
        # that many steps, where each step takes one element per local replica.
        return tf.data.Dataset.from_generator(batches, output_signature=signature)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=False)
    return strategy.distribute_datasets_from_function(per_worker, options)


def avoid_keras_20329(model: keras.Model, data) -> None:
    """Work around keras-team/keras#20329 under ``MultiWorkerMirroredStrategy``: before
    training, Keras 3 peeks at the first distributed batch and averages it across
    workers to build the model, which fails for dict inputs (``{"tokens", "resets"}``).
    The model here is already built: it gets a zero batch of the replica's shape instead."""
    if not isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    rows = -(-(data.batch_rows or data.batch_size or 1)
             // model.distribute_strategy.num_replicas_in_sync)
    batch = tf.nest.map_structure(lambda spec: tf.zeros((rows, *spec.shape[1:]), spec.dtype),
                                  data.signature())

    def symbolic_build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = symbolic_build
    # tensorflow#72388: Keras 3 averages the replicas' logs across workers along axis 0,
    # which scalars lack; each log leaves the step as a one-element vector instead.
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        setattr(model, name, lambda data, step=step: {
            key: tf.reshape(value, [1]) for key, value in step(data).items()})
