"""Preprocessing throughput for NLTK's whole Gutenberg selection, cold and from the cache.

Pipeline: lowercase -> nltk-words -> nltk-stopwords, vocabulary fitted on the training
split. "Cold" tokenizes everything and stores the token ids; "cached" is a second
prepare with the same inputs (it still reads and hashes every document). MB/s counts
the raw text's UTF-8 bytes.

    NLTK_DATA=../shared/nltk_data python benchmarks/preprocess_speed.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

from toolkit.config import build_components, resolve
from toolkit.data import cache_settings, prepare
from toolkit.plugins import registry
from toolkit.preprocess import Preprocessor

CONFIG = {
    "corpus": {"use": "nltk", "name": "gutenberg"},
    "preprocess": [{"use": "lowercase"}, {"use": "nltk-words"}, {"use": "nltk-stopwords"}],
}


def main() -> int:
    resolved = resolve(CONFIG, registry())
    components = build_components(resolved, registry())
    preprocessor = Preprocessor(components.stages)
    megabytes = sum(len(d.text.encode()) for d in components.corpus.documents()) / 1e6
    settings = cache_settings(resolved)
    cold, cached = [], []
    for _ in range(3):
        os.environ["TOOLKIT_CACHE"] = tempfile.mkdtemp(prefix="bench-cache-")
        start = time.perf_counter()
        first = prepare(components.corpus, preprocessor, resolved["vocab"],
                        components.sequences, 0.1,
                        cache_settings=settings)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        second = prepare(components.corpus, preprocessor, resolved["vocab"],
                         components.sequences, 0.1,
                         cache_settings=settings)
        cached.append(time.perf_counter() - start)
        assert (first.stats["cache"], second.stats["cache"]) == ("miss", "hit")
    result = {"megabytes": round(megabytes, 2), "tokens": first.stats["train_tokens"]
              + first.stats["validation_tokens"], "vocab_size": first.stats["vocab_size"],
              "cold_seconds_median": round(statistics.median(cold), 2),
              "cold_mb_per_s": round(megabytes / statistics.median(cold), 2),
              "cached_seconds_median": round(statistics.median(cached), 3),
              "cached_mb_per_s": round(megabytes / statistics.median(cached), 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
