"""Training and generation speed: the toolkit against a plain PyTorch loop of the same model.

In one process, one after the other, on tiny-shakespeare's characters:

- **training**: 1-layer LSTM (``--units``, default 256 and 512), embedding 64, a
  softmax over the characters, Adam 0.002 with clipnorm 5, batch 64, windows of 100
  (truncated BPTT, state carried across batches). The toolkit is timed as
  ``toolkit train`` runs it: the model from ``build_model`` and ``compile_model``
  (``train.xla = "auto"``), the stream builder's batches, ``fit``. Beside it, Keras's
  own ``keras.layers.LSTM`` with a plain ``fit`` (what the toolkit did before its
  ``FastLSTM``), and a plain PyTorch ``nn.LSTM`` loop on the same batches. The
  comparison reads the text as one document (``sequences.documents = "joined"``);
  ``toolkit_resets`` is the toolkit with the per-row reset input of document-aware
  streams (``"separate"``, the default), to show what that input costs. Rounds
  alternate (toolkit, Keras, PyTorch, toolkit, ...) and each figure is the median
  over rounds of characters per second.
- **generation**: a 256-unit model sampled at batch 1 and 32: the toolkit's
  ``Generator`` (compiled once, reused) against a PyTorch eager sampling loop.

PyTorch is the optional ``bench`` extra (``pip install -e ".[bench]"``); without it
only the toolkit and Keras figures are printed.

    TOOLKIT_DATA=../shared/corpora python benchmarks/speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from toolkit.backend import load_tensorflow  # noqa: E402

load_tensorflow()

import keras  # noqa: E402
import numpy as np

from toolkit.config.schema import build_components, load
from toolkit.data.prepare import prepare_config
from toolkit.generate.sampling import Generator
from toolkit.hookspecs import HeadContext
from toolkit.model.assembly import build_model, compile_model, inference_twin
from toolkit.plugins import registry
from toolkit.data.preprocess import Preprocessor
from toolkit.model.state import reset_states

try:
    import torch
except ImportError:  # the bench extra is not installed
    torch = None

CONFIG = "configs/shakespeare-char.toml"
BATCH, WINDOW, EMBED = 64, 100, 64


def stream_batches(units: int, documents: str = "joined"):
    """The resolved config, its components and the stream builder's training batches."""
    resolved = load(CONFIG, registry(), [f"core.units={units}", "train.cache=false",
                                         f"sequences.documents={documents}"])
    components = build_components(resolved, registry())
    prepared = prepare_config(components, resolved)
    builder = components.sequences
    data = builder.training(builder.data(prepared.splits["train"], [], training=True), 1)
    return resolved, components, prepared, data


def keras_speed(model, data, batches: int) -> float:
    """Characters per second of ``fit`` over ``batches`` of ``data``."""
    dataset = data.dataset().take(batches)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    return batches * BATCH * WINDOW / (time.perf_counter() - start)


def keras_reference(components, vocab_size: int, units: int, train: dict):
    """The same model with Keras's own LSTM layer, compiled as Keras does by default."""
    tokens = keras.Input(batch_shape=(BATCH, None), dtype="int32")
    x = components.encoder.build(vocab_size)(tokens)
    x = keras.layers.LSTM(units, return_sequences=True, stateful=True)(x)
    out = components.head.build(x, HeadContext(vocab_size, [], {"tokens": tokens}))
    model = keras.Model(tokens, out)
    model.compile(optimizer=keras.optimizers.Adam(train["learning_rate"], clipnorm=5.0),
                  loss=components.head.loss(), weighted_metrics=components.head.metrics())
    return model


class TorchModel(torch.nn.Module if torch else object):
    def __init__(self, vocab_size: int, units: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, EMBED)
        self.lstm = torch.nn.LSTM(EMBED, units, batch_first=True)
        self.out = torch.nn.Linear(units, vocab_size)

    def forward(self, x, state=None):
        y, state = self.lstm(self.embedding(x), state)
        return self.out(y), state


def torch_speed(model, optimizer, data, batches: int) -> float:
    """Characters per second of a plain truncated-BPTT loop over the same batches."""
    state, start = None, time.perf_counter()
    for k in range(batches):
        x, y, w = (torch.from_numpy(np.asarray(a)) for a in data[k])
        optimizer.zero_grad()
        logits, state = model(x.long(), state)
        state = tuple(s.detach() for s in state)
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y.long(),
                                                   reduction="none")
        loss = (losses * w).sum() / w.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return batches * BATCH * WINDOW / (time.perf_counter() - start)


def training(units: int, batches: int, rounds: int) -> dict:
    resolved, components, prepared, data = stream_batches(units)
    vocab_size = len(prepared.vocab)
    keras.utils.set_random_seed(1)
    toolkit_model = build_model(components, vocab_size, BATCH, stateful=True)
    compile_model(toolkit_model, components, resolved["train"])
    reference = keras_reference(components, vocab_size, units, resolved["train"])
    _, resets_components, _, resets_data = stream_batches(units, "separate")
    resets_model = build_model(resets_components, vocab_size, BATCH, stateful=True)
    compile_model(resets_model, resets_components, resolved["train"])
    contenders = {"toolkit": lambda: keras_speed(toolkit_model, data, batches),
                  "toolkit_resets": lambda: keras_speed(resets_model, resets_data, batches),
                  "keras_lstm": lambda: keras_speed(reference, data, batches)}
    if torch is not None:
        torch.manual_seed(1)
        torch_model = TorchModel(vocab_size, units)
        optimizer = torch.optim.Adam(torch_model.parameters(), lr=resolved["train"]["learning_rate"])
        contenders["pytorch"] = lambda: torch_speed(torch_model, optimizer, data, batches)
    for run in contenders.values():  # warm-up: tracing, XLA compilation, allocators
        run()
    figures = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            figures[name].append(run())
    return summarize(figures, f"training_{units}")


def torch_generation_speed(model, samples: int, length: int) -> float:
    """A PyTorch eager sampling loop: one step per token, ``torch.multinomial``."""
    token = torch.ones(samples, 1, dtype=torch.long)
    state, start = None, time.perf_counter()
    with torch.no_grad():
        for _ in range(length):
            logits, state = model(token, state)
            token = torch.multinomial(torch.softmax(logits[:, -1] / 0.8, -1), 1)
    return samples * length / (time.perf_counter() - start)


def generation(length: int, rounds: int) -> list[dict]:
    resolved, components, prepared, _ = stream_batches(256)
    trained = build_model(components, len(prepared.vocab), BATCH, stateful=True)
    rows = []
    for samples in (1, 32):
        twin = inference_twin(trained, components, len(prepared.vocab), samples)
        generator = Generator(Preprocessor(components.stages), prepared.vocab, twin, samples)
        generator.compile()

        def ours():
            start = time.perf_counter()
            generator.generate("ROMEO:\n", length, temperature=0.8)
            return samples * length / (time.perf_counter() - start)

        start = time.perf_counter()
        generator.generate("ROMEO:\n", 10, temperature=0.8)  # the one compilation
        first_call = time.perf_counter() - start
        contenders = {"toolkit": ours}
        if torch is not None:
            model = TorchModel(len(prepared.vocab), 256).eval()
            contenders["pytorch"] = lambda: torch_generation_speed(model, samples, length)
        figures = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, run in contenders.items():
                reset_states(twin)
                figures[name].append(run())
        row = summarize(figures, f"generation_batch_{samples}")
        row["toolkit_first_call_seconds"] = round(first_call, 2)
        rows.append(row)
    return rows


def summarize(figures: dict, name: str) -> dict:
    row = {"measure": name}
    for contender, values in figures.items():
        row[contender] = round(statistics.median(values))
        row[f"{contender}_all"] = [round(v) for v in values]
    if "pytorch" in row:
        row["toolkit_over_pytorch"] = round(row["toolkit"] / row["pytorch"], 2)
    if "toolkit_resets" in row:
        row["resets_over_toolkit"] = round(row["toolkit_resets"] / row["toolkit"], 2)
    if "keras_lstm" in row:
        row["toolkit_over_keras_lstm"] = round(row["toolkit"] / row["keras_lstm"], 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, default=30, help="training batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=2000, help="tokens generated per round")
    parser.add_argument("--skip", choices=["training", "generation"])
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "cores": os.cpu_count(),
                      "torch": torch.__version__ if torch else None,
                      "keras": keras.__version__}), flush=True)
    if args.skip != "training":
        for units in args.units:
            print(json.dumps(training(units, args.batches, args.rounds)), flush=True)
    if args.skip != "generation":
        for row in generation(args.length, args.rounds):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    raise SystemExit(main())
