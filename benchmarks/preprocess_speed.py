"""Preprocessing throughput for NLTK's whole Gutenberg selection, cold and from the cache.

Pipelines (the vocabulary fitted on the training split):

- ``words``: lowercase -> nltk-words -> nltk-stopwords;
- ``words-nltk``: the same with NLTK's own ``NLTKWordTokenizer`` in place of the
  toolkit's :class:`~toolkit_nltk.fast_words.FastWordTokenizer` (the reference: the same
  tokens, as the pipeline was before issue 8);
- ``chars``: characters as they are;
- ``chars-clean``: gutenberg-strip -> whitespace -> chars.

Each runs with one process (``workers = 1``) and with one per core (``workers = 0``).
"Cold" tokenizes everything and stores the token ids in an empty cache; "cached" is a
second prepare with the same inputs (it still reads and hashes every document). MB/s
counts the raw text's characters in millions. Rounds alternate between the rows so that
a slow spell of the machine falls on all of them; medians of ``--rounds``.

    NLTK_DATA=../shared/nltk_data python benchmarks/preprocess_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from toolkit.config.schema import build_components, resolve
from toolkit.data.prepare import cache_settings, prepare
from toolkit.plugins import registry
from toolkit.data.preprocess import Preprocessor, available_cores

CORPUS = {"use": "nltk", "name": "gutenberg"}
WORDS = [{"use": "lowercase"}, {"use": "nltk-words"}, {"use": "nltk-stopwords"}]
PIPELINES = {
    "words": WORDS,
    "words-nltk": WORDS,
    "chars": [{"use": "chars"}],
    "chars-clean": [{"use": "gutenberg-strip"}, {"use": "whitespace"}, {"use": "chars"}],
}


def setup(name: str):
    resolved = resolve({"corpus": CORPUS, "preprocess": PIPELINES[name]}, registry())
    components = build_components(resolved, registry())
    preprocessor = Preprocessor(components.stages)
    if name == "words-nltk":
        from nltk.tokenize import NLTKWordTokenizer

        preprocessor.stages[1].tokenizer = NLTKWordTokenizer()
    return resolved, components, preprocessor


def timed_prepare(resolved, components, preprocessor, workers: int):
    start = time.perf_counter()
    prepared = prepare(components.corpus, preprocessor, resolved["vocab"],
                       components.sequences, 0.1, cache_settings=cache_settings(resolved),
                       workers=workers)
    return time.perf_counter() - start, prepared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(PIPELINES), choices=list(PIPELINES))
    args = parser.parse_args()
    rows = [(name, workers) for name in args.only
            for workers in ((1,) if name == "words-nltk" else (1, 0))]
    setups = {name: setup(name) for name in args.only}
    megabytes = sum(len(d.text) for d in setups[args.only[0]][1].corpus.documents()) / 1e6
    cold = {row: [] for row in rows}
    cached = {row: [] for row in rows}
    outputs = {}
    for _ in range(args.rounds):
        for row in rows:
            name, workers = row
            os.environ["TOOLKIT_CACHE"] = tempfile.mkdtemp(prefix="bench-cache-")
            seconds, first = timed_prepare(*setups[name], workers)
            cold[row].append(seconds)
            seconds, second = timed_prepare(*setups[name], workers)
            cached[row].append(seconds)
            assert (first.stats["cache"], second.stats["cache"]) == ("miss", "hit")
            outputs[row] = (first.vocab.tokens, first.stats["train_tokens"])
    if ("words", 1) in outputs and ("words-nltk", 1) in outputs:
        assert outputs[("words", 1)] == outputs[("words-nltk", 1)], "tokens differ from NLTK's"
    print(json.dumps({"megabytes": round(megabytes, 2), "cores": available_cores(),
                      "rounds": args.rounds}))
    for row in rows:
        name, workers = row
        print(json.dumps({
            "pipeline": name, "workers": workers or f"0 ({available_cores()})",
            "tokens": outputs[row][1], "vocab_size": len(outputs[row][0]),
            "cold_seconds": [round(s, 2) for s in cold[row]],
            "cold_mb_per_s": round(megabytes / statistics.median(cold[row]), 2),
            "cached_mb_per_s": round(megabytes / statistics.median(cached[row]), 1)}))
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
