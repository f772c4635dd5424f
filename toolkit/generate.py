"""Generation: prime an inference twin with the user's text, then sample token by token.

The twin is the trained model rebuilt for ``samples`` parallel sequences (stateful,
batch size ``samples``) with the trained weights. Priming feeds the prime text
through it in one call; sampling is keras-nlp's sampler loop, compiled with
``tf.function``, where each step feeds one token and reads the next distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import keras_nlp
import numpy as np
import tensorflow as tf
from keras import ops

from toolkit.errors import ToolkitError
from toolkit.model import inference_twin
from toolkit.preprocess import Preprocessor
from toolkit.runs import Run
from toolkit.state import reset_states
from toolkit.vocab import OOV, PAD


def make_sampler(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int | None = None):
    """The keras-nlp sampler for these settings (top-p with an optional top-k cut, top-k, or plain)."""
    if top_p < 1.0:
        return keras_nlp.samplers.TopPSampler(p=top_p, k=top_k or None, seed=seed,
                                              temperature=temperature)
    if top_k:
        return keras_nlp.samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    return keras_nlp.samplers.RandomSampler(seed=seed, temperature=temperature)


@dataclass
class Generator:
    """A trained run ready to generate: its preprocessing, vocabulary and twin for ``samples``."""

    preprocessor: Preprocessor
    vocab: object
    twin: keras.Model
    samples: int

    @classmethod
    def from_run(cls, run: Run | str, samples: int = 1) -> "Generator":
        """A generator for an opened run (or a run directory)."""
        run = run if isinstance(run, Run) else Run.open(run)
        twin = inference_twin(run.model, run.components, len(run.vocab), samples)
        generator = cls(run.preprocessor, run.vocab, twin, samples)
        generator.compile()
        return generator

    def compile(self):
        twin = self.twin
        banned = ops.convert_to_tensor(
            np.isin(np.arange(len(self.vocab)), [PAD, OOV]), dtype="bool")

        def feed(tokens):
            """Run tokens through the twin (advancing its state); return the last distribution."""
            return twin(tokens, training=False)[:, -1, :]

        def next_token_logits(prompt, cache, index):
            probabilities = feed(ops.expand_dims(prompt[:, index - 1], 1))
            logits = ops.log(ops.maximum(probabilities, 1e-12))
            # Padding and "unknown" are never generated.
            logits = ops.where(banned[None, :], -1e9, logits)
            return logits, None, cache

        # Traced per input shape: Keras's TimeDistributed cannot take a masked input
        # whose time dimension is unknown, so shapes stay static.
        self._feed = tf.function(feed)
        self._next_token_logits = next_token_logits
        self._sampling = {}

    def sampling_function(self, prime_length: int, length: int, temperature: float, top_k: int,
                          top_p: float, seed: int | None):
        """The compiled sampling loop for these settings. Without a seed it is traced once
        and reused (a trace costs about a second); a seed gets a fresh sampler each call,
        so the same seed gives the same text."""
        key = (prime_length, length, temperature, top_k, top_p)
        if seed is None and key in self._sampling:
            return self._sampling[key]
        sampler = make_sampler(temperature, top_k, top_p, seed)

        @tf.function
        def sample(prompt, mask):
            return sampler(self._next_token_logits, prompt, index=prime_length, mask=mask)

        if seed is None:
            self._sampling[key] = sample
        return sample

    def encode_prime(self, prime: str) -> np.ndarray:
        tokens = self.preprocessor(prime)
        if not tokens:
            raise ToolkitError(f"the prime {prime!r} gives no tokens after preprocessing; "
                               f"give text the model knows with --prime (or set "
                               f"generate.prime in the config)")
        unknown = self.vocab.unknown(tokens)
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10])
            raise ToolkitError(
                f"--prime contains {len(unknown)} token(s) never seen in training: {shown}. "
                f"Remove or replace them; the vocabulary has {len(self.vocab) - 2} tokens")
        return self.vocab.encode(tokens)

    def prime(self, ids: np.ndarray) -> np.ndarray:
        """Zero the state and feed ``ids`` (one sequence, repeated for every sample).
        Returns the next-token distributions after the last id, shape ``(samples, vocab)``."""
        reset_states(self.twin)
        return self.advance(ids)

    def advance(self, ids: np.ndarray) -> np.ndarray:
        """Feed ``ids`` on from the current state; the distributions after the last id."""
        batch = np.tile(np.asarray(ids)[None, :], (self.samples, 1)).astype("int32")
        return np.asarray(self._feed(batch))

    def generate(self, prime: str, length: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None,
                 include_prime: bool = False) -> list[str]:
        """``samples`` continuations of ``prime``, each ``length`` tokens, as text.

        With ``include_prime`` each text starts with the prime as the model saw it
        (after preprocessing), detokenized together with its continuation."""
        ids = self.encode_prime(prime)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        top_k = min(top_k, len(self.vocab))
        sample = self.sampling_function(len(ids), length, temperature, top_k, top_p, seed)
        reset_states(self.twin)
        if len(ids) > 1:
            self.advance(ids[:-1])
        prompt = np.zeros((self.samples, len(ids) + length), np.int32)
        prompt[:, :len(ids)] = ids
        mask = np.zeros_like(prompt, dtype=bool)
        mask[:, :len(ids)] = True
        out = np.asarray(sample(prompt, mask))[:, 0 if include_prime else len(ids):]
        return [self.preprocessor.detokenize(self.vocab.decode(row)) for row in out]
