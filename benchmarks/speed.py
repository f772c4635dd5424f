"""Training and generation speed: the toolkit on each Keras backend against a plain PyTorch loop.

One invocation runs one worker process per contender family, one after the other, so
that no two frameworks share a process (PyTorch's ``triton`` crashes a process that
already loaded TensorFlow; Keras's backend is fixed per process):

- ``keras`` on TensorFlow and ``keras`` on JAX (``KERAS_BACKEND``): the toolkit as
  ``toolkit train`` runs it (``build_model``, ``compile_model`` with ``train.xla =
  "auto"`` settled by timing, the stream builder's batches, ``fit``) with documents
  ``aligned`` (the default layout: rows zeroed between batches), ``joined`` (no flags
  at all) and, on TensorFlow, ``separate`` (per-step resets) and the XLA setting that
  "auto" did not choose; and Keras's own ``keras.layers.LSTM`` in a plain model. Then
  generation at batch 1 and 32 with the toolkit's ``Generator``. (On JAX, stateful
  streams are timed although ``toolkit train`` refuses them there: Keras 3.15's JAX
  trainer does not carry the state between steps, which changes the result, not the
  work per step.)
- ``torch``: a plain PyTorch ``nn.LSTM`` truncated-BPTT loop on the same batches, and an
  eager sampling loop (install the CPU wheel: ``pip install torch --index-url
  https://download.pytorch.org/whl/cpu``).

The model: 1-layer LSTM (``--units``, default 256 and 512), embedding 64, softmax over
tiny-shakespeare's characters, Adam 0.002 with clipnorm 5, batch 64, windows of 100.
Each contender is warmed up (tracing, XLA), then timed over ``--rounds`` rounds of
``--batches`` batches, the contenders of one process alternating round by round.
Two figures per contender: **steady**, characters per second from the median of the
per-step times (time between consecutive batch ends, read by a callback, the first
step of every round left out), and **whole**, the median over rounds of the whole
``fit`` call. The first line is the machine: ``lscpu``'s model name, cores and load
average; every worker prints its load average when it starts and ends.

    TOOLKIT_DATA=../shared/corpora python benchmarks/speed.py [--units 256 512]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import numpy as np  # noqa: E402

CONFIG = str(HERE.parent / "configs" / "shakespeare-char.toml")
BATCH, WINDOW, EMBED = 64, 100, 64
PRIME = "ROMEO:\n"


def stream_data(units: int, documents: str):
    """The resolved config, its components, the vocabulary and the training batches of the
    stream builder with ``documents`` (imports no framework)."""
    from toolkit.config.schema import build_components, load
    from toolkit.data.prepare import prepare_config
    from toolkit.plugins import registry

    resolved = load(CONFIG, registry(), [f"core.units={units}", "train.cache=false",
                                         f'sequences.documents="{documents}"'])
    components = build_components(resolved, registry())
    prepared = prepare_config(components, resolved)
    builder = components.sequences
    data = builder.training(builder.data(prepared.splits["train"], [], training=True), 1)
    return resolved, components, prepared.vocab, data


def load_line() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def steady(step_seconds: list[float]) -> float:
    """Characters per second from the median per-step time."""
    return BATCH * WINDOW / statistics.median(step_seconds)


# ---------------------------------------------------------------- keras worker

def keras_worker(units_list, batches: int, rounds: int, generation_length: int) -> list[dict]:
    from toolkit.backend import load_tensorflow

    load_tensorflow()
    import keras

    from toolkit.model.assembly import build_model, compile_model, settle_xla, uses_xla

    backend = keras.backend.backend()

    class StepTimes(keras.callbacks.Callback):
        """Seconds between consecutive batch ends (the loss read, so the step is done)."""

        def __init__(self):
            super().__init__()
            self.seconds, self.last = [], None

        def on_train_begin(self, logs=None):
            self.last = None

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(np.asarray(logs["loss"]))
            now = time.perf_counter()
            if self.last is not None:
                self.seconds.append(now - self.last)
            self.last = now

    def timed_fit(model, data, timer):
        dataset = data.dataset().take(batches)
        start = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        return batches * BATCH * WINDOW / (time.perf_counter() - start)

    rows = []
    for units in units_list:
        contenders, settings = {}, None
        layouts = ["aligned", "joined"] + (["separate"] if backend == "tensorflow" else [])
        for documents in layouts:
            resolved, components, vocab, data = stream_data(units, documents)
            keras.utils.set_random_seed(1)
            model = build_model(components, len(vocab), BATCH, stateful=True)
            if settings is None:  # as `toolkit train` does: "auto" timed both ways
                settings = settle_xla(model, components, resolved["train"], data)
            compile_model(model, components, settings)
            name = "toolkit" if documents == "aligned" else f"toolkit_{documents}"
            contenders[name] = (model, data, uses_xla(model, components, settings["xla"]))
            if documents == "aligned" and backend == "tensorflow":
                other = "off" if contenders[name][2] else "on"
                model = build_model(components, len(vocab), BATCH, stateful=True)
                compile_model(model, components, {**settings, "xla": other})
                contenders[f"toolkit_xla_{other}"] = (model, data, other == "on")
        tokens = keras.Input(batch_shape=(BATCH, None), dtype="int32")
        x = keras.layers.Embedding(len(vocab), EMBED)(tokens)
        x = keras.layers.LSTM(units, return_sequences=True, stateful=True)(x)
        out = keras.layers.Dense(len(vocab), activation="softmax")(x)
        plain = keras.Model(tokens, out)
        plain.compile(optimizer=keras.optimizers.Adam(0.002, clipnorm=5.0),
                      loss="sparse_categorical_crossentropy",
                      jit_compile=True if backend == "jax" else "auto")
        contenders["keras_lstm"] = (plain, contenders["toolkit_joined"][1], None)
        timers = {name: StepTimes() for name in contenders}
        whole = {name: [] for name in contenders}
        for name, (model, data, _) in contenders.items():  # warm-up
            timed_fit(model, data, StepTimes())
        for _ in range(rounds):
            for name, (model, data, _) in contenders.items():
                whole[name].append(timed_fit(model, data, timers[name]))
        for name, (_, _, xla) in contenders.items():
            rows.append({"measure": f"training_{units}", "backend": backend, "contender": name,
                         "steady": round(steady(timers[name].seconds)),
                         "whole": round(statistics.median(whole[name])),
                         "steps": len(timers[name].seconds), "xla": xla})
    if generation_length:
        rows.extend(keras_generation(units_list[0] if 256 not in units_list else 256,
                                     generation_length, rounds, backend))
    return rows


def keras_generation(units: int, length: int, rounds: int, backend: str) -> list[dict]:
    from toolkit.data.preprocess import Preprocessor
    from toolkit.generate.sampling import Generator
    from toolkit.model.assembly import build_model, inference_twin

    resolved, components, vocab, _ = stream_data(units, "aligned")
    trained = build_model(components, len(vocab), BATCH, stateful=True)
    rows = []
    for samples in (1, 32):
        twin = inference_twin(trained, components, len(vocab), samples)
        generator = Generator(Preprocessor(components.stages), vocab, twin, samples)
        generator.compile()
        start = time.perf_counter()
        generator.generate(PRIME, 10, temperature=0.8)  # the one compilation
        first_call = time.perf_counter() - start
        figures = []
        for _ in range(rounds):
            start = time.perf_counter()
            generator.generate(PRIME, length, temperature=0.8)
            figures.append(samples * length / (time.perf_counter() - start))
        rows.append({"measure": f"generation_batch_{samples}", "backend": backend,
                     "contender": "toolkit", "whole": round(statistics.median(figures)),
                     "all": [round(f) for f in figures], "units": units,
                     "first_call_seconds": round(first_call, 2)})
    return rows


# ---------------------------------------------------------------- torch worker

def torch_worker(units_list, batches: int, rounds: int, generation_length: int) -> list[dict]:
    import torch

    class TorchModel(torch.nn.Module):
        def __init__(self, vocab_size: int, units: int):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, EMBED)
            self.lstm = torch.nn.LSTM(EMBED, units, batch_first=True)
            self.out = torch.nn.Linear(units, vocab_size)

        def forward(self, x, state=None):
            y, state = self.lstm(self.embedding(x), state)
            return self.out(y), state

    def run_round(model, optimizer, data, step_seconds):
        state, start = None, time.perf_counter()
        last = None
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
            now = time.perf_counter()
            if last is not None and step_seconds is not None:
                step_seconds.append(now - last)
            last = now
        return batches * BATCH * WINDOW / (time.perf_counter() - start)

    rows = []
    for units in units_list:
        _, _, vocab, data = stream_data(units, "joined")
        torch.manual_seed(1)
        model = TorchModel(len(vocab), units)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
        run_round(model, optimizer, data, None)  # warm-up
        seconds, whole = [], []
        for _ in range(rounds):
            whole.append(run_round(model, optimizer, data, seconds))
        rows.append({"measure": f"training_{units}", "backend": f"torch {torch.__version__}",
                     "contender": "pytorch", "steady": round(steady(seconds)),
                     "whole": round(statistics.median(whole)), "steps": len(seconds),
                     "threads": torch.get_num_threads()})
    if generation_length:
        units = 256 if 256 in units_list else units_list[0]
        _, _, vocab, _ = stream_data(units, "joined")
        model = TorchModel(len(vocab), units).eval()
        for samples in (1, 32):
            figures = []
            for _ in range(rounds + 1):
                token = torch.ones(samples, 1, dtype=torch.long)
                state, start = None, time.perf_counter()
                with torch.no_grad():
                    for _ in range(generation_length):
                        logits, state = model(token, state)
                        token = torch.multinomial(torch.softmax(logits[:, -1] / 0.8, -1), 1)
                figures.append(samples * generation_length / (time.perf_counter() - start))
            figures = figures[1:]  # the first round warms up
            rows.append({"measure": f"generation_batch_{samples}",
                         "backend": f"torch {torch.__version__}", "contender": "pytorch",
                         "whole": round(statistics.median(figures)),
                         "all": [round(f) for f in figures], "units": units})
    return rows


# ---------------------------------------------------------------- driver

def run_worker(kind: str, backend: str | None, args) -> list[dict]:
    """One worker in its own process; its rows (JSON lines on its standard output)."""
    command = [sys.executable, __file__, "--worker", kind, "--units", *map(str, args.units),
               "--batches", str(args.batches), "--rounds", str(args.rounds),
               "--length", str(0 if args.skip == "generation" else args.length)]
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    started = load_line()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        return [{"worker": kind, "backend": backend, "error": done.returncode}]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        row["load_average_start_end"] = [started, load_line()]
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Each training contender's steady speed over PyTorch's and over the TensorFlow
    toolkit's, per model size."""
    out = []
    rows = [r for r in rows if "measure" in r]
    for measure in sorted({r["measure"] for r in rows if r["measure"].startswith("training")}):
        group = [r for r in rows if r["measure"] == measure and "steady" in r]
        torch_row = next((r for r in group if r["contender"] == "pytorch"), None)
        tf_row = next((r for r in group if r["contender"] == "toolkit"
                       and r["backend"] == "tensorflow"), None)
        for r in group:
            entry = {"measure": measure, "backend": r["backend"], "contender": r["contender"]}
            if torch_row:
                entry["steady_over_pytorch"] = round(r["steady"] / torch_row["steady"], 2)
                entry["whole_over_pytorch"] = round(r["whole"] / torch_row["whole"], 2)
            if tf_row:
                entry["steady_over_toolkit_tensorflow"] = round(r["steady"] / tf_row["steady"], 2)
            joined = next((j for j in group if j["contender"] == "toolkit_joined"
                           and j["backend"] == r["backend"]), None)
            if joined and r["contender"] == "toolkit":
                entry["aligned_cost_vs_joined"] = round(1 - r["steady"] / joined["steady"], 3)
            out.append(entry)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, default=30, help="training batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=2000, help="tokens generated per round")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"],
                        choices=["tensorflow", "jax"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--skip", choices=["generation"])
    parser.add_argument("--worker", choices=["keras", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = keras_worker if args.worker == "keras" else torch_worker
        for row in work(args.units, args.batches, args.rounds, args.length):
            print(json.dumps(row), flush=True)
        return 0
    from machine import print_machine

    print_machine(sys.stdout)
    rows = []
    for backend in args.backends:
        rows += run_worker("keras", backend, args)
    if not args.no_torch:
        rows += run_worker("torch", None, args)
    for row in rows:
        print(json.dumps(row), flush=True)
    for row in ratios(rows):
        print(json.dumps(row), flush=True)
    print(json.dumps({"load_average_end": load_line()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
