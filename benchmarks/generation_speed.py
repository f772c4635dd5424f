"""Generation speed: the toolkit's compiled sampling loop against a model.predict-per-token loop.

Both run on a batch-1 twin of a trained run, primed with the same text, on the CPU.

    python benchmarks/generation_speed.py runs/bench/stream --tokens 2000 --naive-tokens 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from toolkit.generate.sampling import Generator
from toolkit.model.state import reset_states


def naive(generator: Generator, prime: str, tokens: int, seed: int = 0) -> float:
    """The loop users write first: one ``model.predict`` call per generated token."""
    rng = np.random.default_rng(seed)
    ids = generator.encode_prime(prime)
    reset_states(generator.twin)
    probs = generator.twin.predict(ids[None, :], verbose=0)[0, -1]
    start = time.perf_counter()
    for _ in range(tokens):
        probs = probs.astype(np.float64)
        probs[:2] = 0  # padding and unknown
        token = rng.choice(len(probs), p=probs / probs.sum())
        probs = generator.twin.predict(np.array([[token]], np.int32), verbose=0)[0, -1]
    return tokens / (time.perf_counter() - start)


def compiled(generator: Generator, prime: str, tokens: int, seed: int = 0) -> float:
    start = time.perf_counter()
    generator.generate(prime, length=tokens, seed=seed)
    return tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--prime", default="ROMEO:\n")
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--naive-tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    generator = Generator.from_run(args.run, samples=1)
    compiled(generator, args.prime, 20)  # trace once; not timed
    fast = [compiled(generator, args.prime, args.tokens, seed) for seed in range(args.repeats)]
    slow = [naive(generator, args.prime, args.naive_tokens, seed) for seed in range(args.repeats)]
    result = {"compiled_tokens_per_second_median": round(statistics.median(fast), 1),
              "predict_loop_tokens_per_second_median": round(statistics.median(slow), 1)}
    result["speedup"] = round(result["compiled_tokens_per_second_median"]
                              / result["predict_loop_tokens_per_second_median"], 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/machine.py

    print_machine()
    sys.exit(main())
