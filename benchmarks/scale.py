"""A corpus bigger than the rest of the project's: peak memory, preprocessing speed, time to
the first training step.

Builds a text corpus of ``--megabytes`` (default 1000) from NLTK's Gutenberg selection:
every book repeated with its paragraphs shuffled anew each time, written as one file per
copy under ``--folder`` (reused when it is already that size). Then, in a fresh process
for each round, the toolkit's own pipeline on it:

1. ``prepare`` (read, tokenize at character level, split, fit the vocabulary, write the
   memory-mapped ids), with the token-id cache in a fresh folder (a miss), timed;
2. the stream builder's batches (documents kept apart, random offset) and a 256-unit
   stateful LSTM, trained for ``--steps`` batches with ``fit``;
3. the same again with the cache now filled (a hit).

Each round reports the peak resident memory of the process (``ru_maxrss``: TensorFlow,
the model and the pipeline together), preprocessing MB/s, and the seconds from the
process start to the end of the first training step.

    NLTK_DATA=../shared/nltk_data python benchmarks/scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
BOOKS = Path(os.environ.get("NLTK_DATA", "../shared/nltk_data")) / "corpora" / "gutenberg"


def build_corpus(folder: Path, megabytes: int) -> int:
    """Write the corpus (or keep the one there); its size in bytes."""
    target = megabytes * 1_000_000
    folder.mkdir(parents=True, exist_ok=True)
    size = sum(f.stat().st_size for f in folder.glob("*.txt"))
    if abs(size - target) < 0.05 * target:
        return size
    for old in folder.glob("*.txt"):
        old.unlink()
    books = {p.stem: p.read_text(encoding="latin-1").replace("\r\n", "\n").split("\n\n")
             for p in sorted(BOOKS.glob("*.txt"))}
    size, copy = 0, 0
    rng = random.Random(1)
    while size < target:
        for name, paragraphs in books.items():
            shuffled = paragraphs[:]
            rng.shuffle(shuffled)
            text = "\n\n".join(shuffled)
            path = folder / f"{name}-{copy:04d}.txt"
            path.write_text(text, encoding="utf-8")
            size += path.stat().st_size
            if size >= target:
                break
        copy += 1
    return size


CONFIG = """
[corpus]
use = "directory"
path = "{folder}"

[[preprocess]]
use = "chars"

[encoder]
use = "embedding"
dim = 64

[sequences]
use = "stream"
batch_size = 64
length = 100

[core]
use = "lstm"
units = 256

[train]
validation_fraction = 0.01
learning_rate = 0.002
"""


def peak_rss_mb() -> int:
    """The process's peak resident memory so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(config_path: str, steps: int) -> dict:
    """One round in this process: prepare, lay out the streams, train ``steps`` batches."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from toolkit.backend import load_tensorflow

    load_tensorflow()
    import keras

    from toolkit.training.callbacks import FollowEpochs
    from toolkit.config.schema import build_components, load
    from toolkit.data.prepare import prepare_config
    from toolkit.model.assembly import build_model, compile_model
    from toolkit.plugins import registry

    imported = time.perf_counter()
    peaks = {"imports": peak_rss_mb()}
    resolved = load(config_path, registry())
    components = build_components(resolved, registry())
    prepared = prepare_config(components, resolved)
    prepared_at = time.perf_counter()
    peaks["prepare"] = peak_rss_mb()
    builder = components.sequences
    data = builder.training(builder.data(prepared.splits["train"], training=True), seed=1)
    model = build_model(components, len(prepared.vocab), builder.batch_size, stateful=True)
    compile_model(model, components, resolved["train"], steps=len(data))
    first_step = {}

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            first_step.setdefault("at", time.perf_counter())

    peaks["model"] = peak_rss_mb()
    model.fit(data.dataset().take(steps), epochs=1, verbose=0, shuffle=False,
              callbacks=[FollowEpochs(data), *builder.callbacks(data), FirstStep()])
    fit_end = time.perf_counter()
    peaks["training"] = peak_rss_mb()
    megabytes = prepared.stats["train_characters"] / 1e6 / (1 - 0.01)
    return {"cache": prepared.stats["cache"], "documents": prepared.stats["documents"],
            "train_characters": prepared.stats["train_characters"],
            "id_type": str(prepared.splits["train"].concatenated().dtype),
            "batches_per_epoch": len(data),
            "prepare_seconds": round(prepared_at - imported, 1),
            "preprocess_mb_per_s": round(megabytes / (prepared_at - imported), 1),
            "seconds_to_first_step": round(first_step["at"] - START, 1),
            "train_characters_per_s_after_first_step":
                round((steps - 1) * 64 * 100 / (fit_end - first_step["at"])),
            "peak_rss_mb": peak_rss_mb(), "peak_rss_mb_after": peaks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(),
                                                         "toolkit-scale-corpus"))
    parser.add_argument("--steps", type=int, default=20, help="training batches per round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)), flush=True)
        return 0
    folder = Path(args.folder)
    started = time.perf_counter()
    size = build_corpus(folder, args.megabytes)
    print(json.dumps({"corpus": str(folder), "megabytes": round(size / 1e6),
                      "files": len(list(folder.glob("*.txt"))),
                      "build_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    with tempfile.TemporaryDirectory(prefix="toolkit-scale-") as work:
        config = Path(work) / "scale.toml"
        config.write_text(CONFIG.format(folder=folder))
        env = {**os.environ, "TOOLKIT_CACHE": str(Path(work) / "cache")}
        for _ in ("miss", "hit"):
            result = subprocess.run([sys.executable, __file__, "--child", str(config),
                                     "--steps", str(args.steps)], env=env, check=True,
                                    capture_output=True, text=True)
            print(result.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    raise SystemExit(main())
