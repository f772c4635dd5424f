"""Model assembly: encoder -> core -> head as one ``keras.Model``, and its inference twin."""

from __future__ import annotations

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402

from toolkit.config import Components
from toolkit.errors import ConfigError, ToolkitError
from toolkit.hookspecs import HeadContext
from toolkit.layers.row_resets import with_row_resets
from toolkit.state import check_row_resets, reset_states

ENCODER = "encoder"
CORE_PREFIX = "core_"
GENERATOR_HEAD = "head_generator"
NEXT_TOKEN_HEADS = (GENERATOR_HEAD, "head_author_lms")  # the heads init.copy = "head" fills


def build_model(components: Components, vocab_size: int, batch_size: int | None,
                stateful: bool, labels: list[str] = (), resets: bool | None = None
                ) -> keras.Model:
    """Assemble the model. A stateful model needs a fixed ``batch_size``; time is free.

    The encoder layer is named ``encoder`` and every core layer ``core_*``: that is
    how :func:`copy_weights` finds them in another run's model. With ``resets``
    (``None``: when the sequence builder's streams keep documents apart) the model
    also takes ``"resets"``, ``(batch, time)`` floats, 1 where a row's recurrent state
    starts again from zero.
    """
    batch = batch_size if stateful else None
    if resets is None:
        resets = stateful and getattr(components.sequences, "resets_state", False)
    tokens = keras.Input(batch_shape=(batch, None), dtype="int32", name="tokens")
    extra = dict(components.head.inputs(batch))
    if resets:
        extra["resets"] = keras.Input(batch_shape=(batch, None), dtype="float32",
                                      name="resets")
    features = encode(components, vocab_size, tokens, stateful, extra.get("resets"))
    context = HeadContext(vocab_size, list(labels), {"tokens": tokens, **extra})
    try:
        outputs = components.head.build(features, context)
    except ValueError as err:
        raise ConfigError("head", str(err)) from None
    inputs = {"tokens": tokens, **extra} if extra else tokens
    return keras.Model(inputs, outputs, name="text_model")


def encode(components: Components, vocab_size: int, tokens, stateful: bool, resets=None):
    """The encoder (named ``encoder``) and the core layers (``core_*``) applied to
    ``tokens``; recurrent layers also get ``resets`` when it is given."""
    encoder = components.encoder.build(vocab_size)
    encoder.name = ENCODER
    features = encoder(tokens)
    for i, layer in enumerate(components.core.build(stateful)):
        if not layer.name.startswith(CORE_PREFIX):
            layer.name = f"{CORE_PREFIX}{i}"
        if resets is not None and isinstance(layer, keras.layers.RNN):
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


def copy_weights(source: keras.Model, target: keras.Model, parts=("encoder", "core"),
                 where: str = "the source run") -> list[str]:
    """Copy the weights of ``parts`` of ``source`` into ``target``, layer by name; returns
    the names of the layers copied. ``"head"`` starts the target's next-token head from
    the source's generator head (see :func:`copy_head`).

    A missing layer or a shape that differs (another ``core.units``, ``encoder.dim``
    or vocabulary) is an error.
    """
    copied = [copy_head(source, target, where)] if "head" in parts else []
    for layer in layers_of(target, parts):
        try:
            origin = source.get_layer(layer.name)
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


def copy_head(source: keras.Model, target: keras.Model, where: str) -> str:
    """Start ``target``'s next-token head from ``source``'s generator head: a generator
    takes its softmax as it is, and every author of ``author-lms`` takes the same one,
    so the authors' models start as the source's language model and only grow apart
    where their own text differs. Returns the name of the head filled."""
    import numpy as np

    try:
        kernel, bias = source.get_layer(GENERATOR_HEAD).get_weights()
    except ValueError:
        raise ToolkitError(f"{where} has no generator head to copy (init.copy = \"head\" "
                           f"needs a generator run or [pretrain])") from None
    layer = next((layer for layer in target.layers if layer.name in NEXT_TOKEN_HEADS), None)
    if layer is None:
        raise ToolkitError(f"init.copy = \"head\" fills a next-token head (generator or "
                           f"author-lms); this model's head has no such layer")
    if layer.name == "head_author_lms":
        authors = layer.weights[0].shape[0]
        kernel, bias = np.repeat(kernel[None], authors, 0), np.repeat(bias[None], authors, 0)
    expected = [tuple(v.shape) for v in layer.weights]
    if [kernel.shape, bias.shape] != expected:
        raise ToolkitError(f"layer {layer.name!r}: weights of shapes {[kernel.shape, bias.shape]} "
                           f"from {where}, {expected} here; use the same core settings and "
                           f"vocabulary (init.copy with \"encoder\")")
    layer.set_weights([kernel, bias])
    return layer.name


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
        from toolkit.optimizers import BY_NAME

        return BY_NAME[train["optimizer"]](layer_rates=rates, **kwargs)
    return keras.optimizers.get({"class_name": train["optimizer"], "config": kwargs})


# XLA compiles the training and validation steps once, in about 10 seconds: "auto"
# turns it on only for runs long enough to win that back.
XLA_MIN_STEPS = 500


def uses_xla(model: keras.Model, setting: str = "auto", steps: int | None = None) -> bool:
    """Whether to compile ``model``'s training step with XLA for ``train.xla = setting``.

    ``"auto"``: on the CPU when a core layer runs :class:`~toolkit.layers.FastLSTM`'s
    hoisted loop, whose per-step gate arithmetic XLA fuses (measured in
    docs/benchmarks.md), and the run has at least ``XLA_MIN_STEPS`` training ``steps``
    (``None``: unknown, taken as long). Keras's own LSTM loop gets slower under XLA on
    the CPU, and cuDNN (GPU) cannot be compiled. ``"on"`` wherever every layer supports it.
    Never in a ``tf.distribute`` strategy's scope: the mirrored step fails to compile.
    """
    from toolkit.layers import FastLSTM

    import tensorflow as tf

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    supported = all(layer.supports_jit for layer in layers)
    if setting == "off" or not supported or tf.distribute.has_strategy():
        # Under tf.distribute (train.distribute) the mirrored step fails to compile.
        return False
    if setting == "on":
        return True
    long_enough = steps is None or steps >= XLA_MIN_STEPS
    return long_enough and any(isinstance(layer, FastLSTM) and layer.uses_fast_loop
                               for layer in layers)


def compile_model(model: keras.Model, components: Components, train: dict,
                  steps: int | None = None, init: dict | None = None) -> None:
    """Compile for training: the optimizer of ``train`` (with ``init.lr_decay``'s rates
    per layer), the head's loss and metrics, XLA as :func:`uses_xla` decides for a run
    of ``steps`` training steps."""
    # Head metrics are weighted metrics: Keras passes sample weights only to those.
    model.compile(optimizer=make_optimizer(train, layer_rates(model, init)),
                  loss=components.head.loss(),
                  weighted_metrics=components.head.metrics(),
                  jit_compile=uses_xla(model, train.get("xla", "auto"), steps))


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


AUTHOR_LMS = "head_author_lms"


def author_twin(trained: keras.Model, components: Components, vocab_size: int,
                batch_size: int, author: int) -> keras.Model:
    """A stateful generator for one author of a per-author language-model run: the shared
    encoder and core, with that author's softmax as a ``TimeDistributed`` Dense head."""
    tokens = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="tokens")
    features = encode(components, vocab_size, tokens, stateful=True)
    dense = keras.layers.Dense(vocab_size, activation="softmax", dtype="float32")
    outputs = keras.layers.TimeDistributed(dense, name="head_generator")(features)
    twin = keras.Model(tokens, outputs, name="author_generator")
    copy_weights(trained, twin, ("encoder", "core"))
    heads = trained.get_layer(AUTHOR_LMS)
    dense.set_weights([keras.ops.convert_to_numpy(heads.kernel[author]),
                       keras.ops.convert_to_numpy(heads.bias[author])])
    reset_states(twin)
    return twin
