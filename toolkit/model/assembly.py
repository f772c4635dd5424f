"""Model assembly: encoder -> core -> head as one ``keras.Model``, and its inference twin."""

from __future__ import annotations

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402

from toolkit.config.schema import Components
from toolkit.errors import ConfigError, ToolkitError
from toolkit.hookspecs import HeadContext
from toolkit.model.layers.row_resets import with_row_resets, with_row_starts
from toolkit.model.layers.time_distributed import TimeDistributedDense
from toolkit.model.state import check_row_resets, reset_states

ENCODER = "encoder"
CORE_PREFIX = "core_"


def build_model(components: Components, vocab_size: int, batch_size: int | None,
                stateful: bool, labels: list[str] = (), resets: bool | None = None
                ) -> keras.Model:
    """Assemble the model. A stateful model needs a fixed ``batch_size``; time is free.

    The encoder layer is named ``encoder`` and every core layer ``core_*``: that is
    how :func:`copy_weights` finds them in another run's model. With ``resets``
    (``None``: when the sequence builder's streams keep documents apart) the model
    also takes ``"resets"``, ``(batch, time)`` floats, 1 where a row's recurrent state
    starts again from zero, or, for a builder whose documents start only at a batch's
    first step (``starts_state``), ``"starts"``, ``(batch,)`` floats, 1 for a row whose
    state is zeroed before the batch.
    """
    batch = batch_size if stateful else None
    builder = components.sequences
    if resets is None:
        resets = stateful and (builder.resets_state or builder.starts_state)
    tokens = keras.Input(batch_shape=(batch, None), dtype="int32", name="tokens")
    extra = dict(components.head.inputs(batch))
    if resets and builder.starts_state:
        extra["starts"] = keras.Input(batch_shape=(batch,), dtype="float32", name="starts")
    elif resets:
        extra["resets"] = keras.Input(batch_shape=(batch, None), dtype="float32",
                                      name="resets")
    features = encode(components, vocab_size, tokens, stateful, extra.get("resets"),
                      extra.get("starts"))
    context = HeadContext(vocab_size, list(labels), {"tokens": tokens, **extra})
    try:
        outputs = components.head.build(features, context)
    except ValueError as err:
        raise ConfigError("head", str(err)) from None
    inputs = {"tokens": tokens, **extra} if extra else tokens
    return keras.Model(inputs, outputs, name="text_model")


def encode(components: Components, vocab_size: int, tokens, stateful: bool, resets=None,
           starts=None):
    """The encoder (named ``encoder``) and the core layers (``core_*``) applied to
    ``tokens``; recurrent layers also get ``resets`` (per step) or ``starts`` (per row,
    before the batch) when given."""
    encoder = components.encoder.build(vocab_size)
    encoder.name = ENCODER
    features = encoder(tokens)
    for i, layer in enumerate(components.core.build(stateful)):
        if not layer.name.startswith(CORE_PREFIX):
            layer.name = f"{CORE_PREFIX}{i}"
        if starts is not None and isinstance(layer, keras.layers.RNN):
            if not getattr(layer, "supports_starts", False):
                check_row_resets(layer, documents="aligned")
            features = with_row_starts(layer, features, starts)
        elif resets is not None and isinstance(layer, keras.layers.RNN):
            check_row_resets(layer)
            features = with_row_resets(layer, features, resets)
        else:
            features = layer(features)
    return features


def layers_of(model: keras.Model, parts=("encoder", "core")) -> list[keras.layers.Layer]:
    """The layers of a toolkit model that make up ``parts`` (``"encoder"``, ``"core"``)."""
    def part(layer):
        if layer.name == ENCODER:
            return "encoder"
        return "core" if layer.name.startswith(CORE_PREFIX) else None

    return [layer for layer in model.layers if part(layer) in parts]


def copy_weights(donor: keras.Model, target: keras.Model, parts=("encoder", "core"),
                 where: str = "the run it copies from", heads: tuple | None = None) -> list[str]:
    """Copy the weights of ``parts`` of ``donor`` into ``target``, layer by name; returns
    the names of the layers copied. ``"head"`` starts the target's next-token head from
    the donor's: ``heads`` is ``(donor head, target head)``, the components that built
    the two models (see :func:`copy_head`).

    A missing layer or a shape that differs (another ``core.units``, ``encoder.dim``
    or vocabulary) is an error.
    """
    if "head" in parts and heads is None:
        raise TypeError("copy_weights: copying \"head\" needs heads=(donor head, target head)")
    copied = [copy_head(donor, target, where, *heads)] if "head" in parts else []
    for layer in layers_of(target, parts):
        try:
            origin = donor.get_layer(layer.name)
        except ValueError:
            raise ToolkitError(f"{where} has no layer {layer.name!r}: its encoder and core "
                               f"differ from this config's") from None
        weights = origin.get_weights()
        shapes = [w.shape for w in weights]
        expected = [tuple(v.shape) for v in layer.weights]
        if shapes != expected:
            raise ToolkitError(f"layer {layer.name!r}: weights of shapes {shapes} in {where}, "
                               f"{expected} here; use the same encoder and core settings "
                               f"(and vocabulary) as {where}")
        layer.set_weights(weights)
        copied.append(layer.name)
    return copied


def copy_head(donor: keras.Model, target: keras.Model, where: str, donor_head,
              target_head) -> str:
    """Start ``target``'s next-token head from ``donor``'s language-model softmax, each
    head reading and writing its own layers (:meth:`Head.next_token_softmax`,
    :meth:`Head.start_from_softmax`). Returns the name of the layer filled."""
    softmax = donor_head.next_token_softmax(donor)
    if softmax is None:
        raise ToolkitError(f"{where} has no generator head to copy (init.copy = \"head\" "
                           f"needs a generator run or [pretrain])")
    try:
        return target_head.start_from_softmax(target, *softmax)
    except ValueError as err:
        raise ToolkitError(str(err)) from None


def set_trainable(model: keras.Model, parts, trainable: bool) -> None:
    """Freeze (or unfreeze) ``parts``; the model must be compiled again after."""
    for layer in layers_of(model, parts):
        layer.trainable = trainable


def layer_rates(model: keras.Model, init: dict | None) -> dict[str, float]:
    """Learning-rate factors for ``init.lr_decay`` = D: the copied layers that have weights,
    from the top down, get 1/D, 1/D², ...; ``{}`` when nothing is copied or D is 1."""
    if not init or init.get("lr_decay", 1.0) == 1.0:  # only set with copied weights
        return {}
    copied = [layer for layer in layers_of(model, init["copy"]) if layer.weights]
    decay = init["lr_decay"]
    return {layer.name: decay ** -(depth + 1) for depth, layer in enumerate(reversed(copied))}


def make_optimizer(train: dict, rates: dict[str, float] | None = None
                   ) -> keras.optimizers.Optimizer:
    """The optimizer of ``[train]``; with ``rates`` (layer name -> factor of the learning
    rate, from :func:`layer_rates`) one that steps each layer at its rate."""
    kwargs = {"learning_rate": train["learning_rate"]}
    if train["clipnorm"]:
        kwargs["clipnorm"] = train["clipnorm"]
    if train.get("weight_decay"):
        kwargs["weight_decay"] = train["weight_decay"]
    if rates:
        from toolkit.model.optimizers import BY_NAME

        return BY_NAME[train["optimizer"]](layer_rates=rates, **kwargs)
    return keras.optimizers.get({"class_name": train["optimizer"], "config": kwargs})


# XLA compiles the training and validation steps once, in about 10 seconds: "auto"
# turns it on only for runs long enough to win that back.
XLA_MIN_STEPS = 500


def uses_xla(model: keras.Model, components: Components, setting: str = "auto",
             steps: int | None = None) -> bool:
    """Whether to compile ``model``'s training step with XLA for ``train.xla = setting``.

    ``"auto"``: where the core says it pays for its built layers
    (:meth:`Core.prefers_xla`; the LSTM core's hoisted CPU loop, measured in
    docs/benchmarks.md) and the run has at least ``XLA_MIN_STEPS`` training ``steps``
    (``None``: unknown, taken as long). ``"on"`` wherever every layer supports it.
    Never in a ``tf.distribute`` strategy's scope: the mirrored step fails to compile.
    On the JAX backend, always except ``"off"`` (JAX without XLA runs op by op).
    """
    if keras.backend.backend() == "jax":  # XLA is how JAX runs a step; "off" is eager
        return setting != "off"
    import tensorflow as tf

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    supported = all(layer.supports_jit for layer in layers)
    if setting == "off" or not supported or tf.distribute.has_strategy():
        return False
    if setting == "on":
        return True
    long_enough = steps is None or steps >= XLA_MIN_STEPS
    return long_enough and components.core.prefers_xla(layers_of(model, ("core",)))


#: Training steps timed each way (after one to compile) when "auto" measures XLA.
XLA_TRIAL_STEPS = 4


def measure_xla(model: keras.Model, components: Components, train: dict, data,
                steps: int = XLA_TRIAL_STEPS) -> dict[str, float]:
    """Seconds per training step of a copy of ``model`` without and with XLA: the median
    of ``steps`` steps on ``data``'s first batches, after one step that compiles. The
    copy has the model's weights and a fresh optimizer; ``model`` is left untouched."""
    import statistics
    import time

    batches = [data[k] for k in range(min(len(data), steps + 1))]
    seconds = {}
    for setting in ("off", "on"):
        trial = keras.models.clone_model(model)
        trial.set_weights(model.get_weights())
        compile_model(trial, components, {**train, "xla": setting})
        times = []
        for k, (inputs, targets, weights) in enumerate(batches):
            start = time.perf_counter()
            trial.train_on_batch(inputs, targets, sample_weight=weights)
            if k:
                times.append(time.perf_counter() - start)
        seconds[setting] = statistics.median(times) if times else float("inf")
    return seconds


def settle_xla(model: keras.Model, components: Components, train: dict, data,
               steps: int | None = None) -> dict:
    """``train`` with ``xla = "auto"`` settled to ``"on"`` or ``"off"`` by measuring, where
    "auto" would compile with XLA (:func:`uses_xla`) on TensorFlow: whether XLA speeds the
    step up depends on the CPU (it is faster on some, 1.7x slower on others,
    docs/benchmarks.md), so a copy of the model is timed both ways
    (:func:`measure_xla`) and the faster kept. A line on standard error says which."""
    import sys

    train = train.to_dict() if hasattr(train, "to_dict") else dict(train)
    if (train.get("xla", "auto") != "auto" or keras.backend.backend() != "tensorflow"
            or not uses_xla(model, components, "auto", steps)):
        return train
    seconds = measure_xla(model, components, train, data)
    train["xla"] = "on" if seconds["on"] < seconds["off"] else "off"
    print(f"train.xla = \"auto\": a training step takes {seconds['off'] * 1000:.0f} ms "
          f"without XLA, {seconds['on'] * 1000:.0f} ms with it on this machine: XLA "
          f"{train['xla']}", file=sys.stderr, flush=True)
    return train


def compile_model(model: keras.Model, components: Components, train: dict,
                  steps: int | None = None, init: dict | None = None) -> None:
    """Compile for training: the optimizer of ``train`` (with ``init.lr_decay``'s rates
    per layer), the head's loss and metrics, XLA as :func:`uses_xla` decides for a run
    of ``steps`` training steps."""
    # Head metrics are weighted metrics: Keras passes sample weights only to those.
    model.compile(optimizer=make_optimizer(train, layer_rates(model, init)),
                  loss=components.head.loss(),
                  weighted_metrics=components.head.metrics(),
                  jit_compile=uses_xla(model, components, train.get("xla", "auto"), steps))


def inference_twin(trained: keras.Model, components: Components, vocab_size: int,
                   batch_size: int) -> keras.Model:
    """A stateful copy of ``trained`` for ``batch_size`` parallel sequences, state zeroed.

    Only weights are copied (recurrent state is not a weight), so the twin works
    for any batch size whatever the batch size it was trained with.
    """
    if not components.head.generates:
        raise ToolkitError("this run's head does not generate text (it attributes it); "
                           "use `toolkit attribute` or `toolkit evaluate` with it")
    twin = build_model(components, vocab_size, batch_size, stateful=True, resets=False)
    twin.set_weights(trained.get_weights())
    reset_states(twin)
    return twin


def author_twin(trained: keras.Model, components: Components, vocab_size: int,
                batch_size: int, author: int) -> keras.Model:
    """A stateful generator for one author of a per-author language-model run: the shared
    encoder and core, with that author's softmax (as the head gives it,
    :meth:`Head.next_token_softmax`) as a ``TimeDistributed`` Dense layer."""
    softmax = components.head.next_token_softmax(trained, author)
    if softmax is None:
        raise ToolkitError("this run's head has no softmax per author to write with")
    tokens = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    features = encode(components, vocab_size, tokens, stateful=True)
    dense = keras.layers.Dense(vocab_size, activation="softmax", dtype="float32")
    outputs = TimeDistributedDense(dense, name="author_softmax")(features)
    twin = keras.Model(tokens, outputs, name="author_generator")
    copy_weights(trained, twin, ("encoder", "core"))
    dense.set_weights(list(softmax))
    reset_states(twin)
    return twin
