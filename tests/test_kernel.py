"""The kernel each shipped stream config's core takes on a GPU, checked on this CPU.

TensorFlow is told there is a GPU (``gpu_available``), and Keras's cuDNN entry point
(``keras.src.backend.lstm``, what ``keras.layers.LSTM.inner_loop`` calls first) is
replaced by a recorder that checks cuDNN's conditions on the arguments it receives,
then declines as the real one does without a GPU. A layer that runs its own loop
never reaches it: what is checked is the path each layer chooses on a real batch of
its config's layout, not the config's text.
"""

import importlib

import numpy as np
import pytest

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import keras.src.backend as keras_backend  # noqa: E402

from toolkit.config import schema  # noqa: E402
from toolkit.config.shipped import copy_config, shipped  # noqa: E402
from toolkit.model import assembly  # noqa: E402
from toolkit.model.layers import fast_lstm  # noqa: E402
from toolkit.plugins import registry  # noqa: E402
from toolkit.splits import Split  # noqa: E402

tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")  # the module, not rnn()


def stream_configs() -> list[str]:
    """The shipped configs whose sequences are stateful streams."""
    return [name for name, text in shipped().items()
            if 'use = "stream"' in text.split("[sequences]", 1)[-1].split("[", 1)[0]]


def components_of(name, tmp_path, overrides=()):
    path = copy_config(name, str(tmp_path / f"{name}.toml"), force=True)
    resolved = schema.load(str(path), registry(), ["sequences.batch_size=4",
                                                   "sequences.length=12", *overrides])
    return schema.build_components(resolved, registry(), config_file=str(path))


@pytest.fixture
def pretend_gpu(monkeypatch):
    """A GPU as the toolkit sees it; Keras's cuDNN entry records each call's conditions."""
    calls = []

    def cudnn_lstm(inputs, initial_state_h, initial_state_c, mask, kernel, recurrent_kernel,
                   bias, activation, recurrent_activation, return_sequences=False,
                   go_backwards=False, unroll=False, time_major=False):
        mask_ok = mask is None or bool(tf_rnn._is_sequence_right_padded(mask)
                                       and not tf_rnn._has_fully_masked_sequence(mask))
        calls.append({"arguments_ok": tf_rnn._do_lstm_arguments_support_cudnn(
            activation, recurrent_activation, unroll, bias is not None), "mask_ok": mask_ok,
            "go_backwards": go_backwards})
        raise NotImplementedError  # as without a GPU: Keras falls back to its own loop

    monkeypatch.setattr(fast_lstm, "gpu_available", lambda: True)
    monkeypatch.setattr(keras_backend, "lstm", cudnn_lstm)
    return calls


def run_one_batch(components, vocab_size=30):
    """The config's model on the first training batch of a three-document corpus."""
    builder = components.sequences
    split = Split([np.arange(n) % (vocab_size - 2) + 2 for n in (300, 7, 200)], [None] * 3,
                  ["a", "b", "c"])
    data = builder.training(builder.data(split), seed=1)
    model = assembly.build_model(components, vocab_size, builder.batch_size, stateful=True)
    inputs, _, _ = data[len(data) - 1]
    model(inputs, training=True)
    return model


def test_every_shipped_stream_config_is_checked():
    assert {"shakespeare-char", "shakespeare-char-512", "shakespeare-char-2x512",
            "gutenberg-pretrain-char", "austen-words"} <= set(stream_configs())


@pytest.mark.parametrize("name", stream_configs())
def test_with_a_gpu_every_core_layer_of_a_shipped_stream_config_takes_cudnn(
        name, tmp_path, pretend_gpu):
    components = components_of(name, tmp_path)
    model = run_one_batch(components)
    lstms = [layer for layer in assembly.layers_of(model, ("core",))
             if isinstance(layer, keras.layers.LSTM)]
    assert lstms and not any(layer.uses_fast_loop for layer in lstms)
    assert len(pretend_gpu) == len(lstms), "a core layer ran its own loop, not cuDNN"
    for call in pretend_gpu:
        assert call == {"arguments_ok": True, "mask_ok": True, "go_backwards": False}


def test_with_a_gpu_per_step_resets_keep_the_core_off_cudnn(tmp_path, pretend_gpu):
    components = components_of("shakespeare-char", tmp_path, ['sequences.documents="separate"'])
    run_one_batch(components)
    assert pretend_gpu == [], "per-step resets need the toolkit's own loop"


def test_auto_xla_keeps_whichever_is_faster_here_and_leaves_the_model_untouched(
        tmp_path, monkeypatch, capsys):
    components = components_of("shakespeare-char", tmp_path, ["core.units=8"])
    builder = components.sequences
    split = Split([np.arange(400) % 28 + 2], [None], ["a"])
    data = builder.training(builder.data(split), seed=1)
    model = assembly.build_model(components, 30, builder.batch_size, stateful=True)
    before = [np.array(w) for w in model.get_weights()]
    train = {"optimizer": "adam", "learning_rate": 0.01, "clipnorm": 0, "xla": "auto"}
    seconds = assembly.measure_xla(model, components, train, data, steps=2)
    assert set(seconds) == {"on", "off"} and all(0 < s < 60 for s in seconds.values())
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert getattr(model, "optimizer", None) is None, "the model itself was not compiled"
    for on, off, kept in ((0.5, 1.0, "on"), (1.0, 0.5, "off")):
        monkeypatch.setattr(assembly, "measure_xla", lambda *a, **k: {"on": on, "off": off})
        assert assembly.settle_xla(model, components, train, data)["xla"] == kept
        assert f"XLA {kept}" in capsys.readouterr().err
    # a short run, or a setting given, is not measured
    assert assembly.settle_xla(model, components, train, data, steps=10)["xla"] == "auto"
    assert assembly.settle_xla(model, components, {**train, "xla": "off"}, data)["xla"] == "off"
