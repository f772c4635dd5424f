"""Generation: prime an inference twin with the user's text, then sample token by token.

The twin is the trained model rebuilt for ``samples`` parallel sequences (stateful,
batch size ``samples``) with the trained weights. Priming feeds the prime text
through it in one call. Sampling runs a loop of ``CHUNK`` steps compiled once per
twin (with XLA on the CPU): each step feeds the last token through the twin (advancing
its state), filters the distribution (temperature, top-k, top-p) and draws the next
token with a counter-based random generator (temperature 0: the likeliest token, greedy).
Temperature, top-k, top-p, the seed and the first token are tensors, not constants, so
later calls with other settings, other
primes and other lengths reuse the same compiled loop; a text of any length is a few
calls of it. (keras-nlp's samplers bake their settings and the prompt's shape into the
trace, which costs a retrace per setting.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402
import numpy as np
import tensorflow as tf

from toolkit.backend import gpu_available
from toolkit.errors import ToolkitError
from toolkit.model.assembly import author_twin, inference_twin
from toolkit.data.preprocess import Preprocessor
from toolkit.runs.rundir import Run
from toolkit.model.state import reset_states
from toolkit.data.vocab import OOV, PAD

# Tokens drawn per call of the compiled loop.
CHUNK = 256


def author_index(run: Run, author: str) -> int:
    """The index of ``author`` in a per-author language-model run, with errors a user can act on."""
    if not run.head.writes_per_author:
        raise ToolkitError(f"--author: {run.path} is a {run.config.head.use!r} run; "
                           f"only runs with a language model per author (author-lms) "
                           f"write in one author's style")
    if author not in run.labels:
        raise ToolkitError(f"--author: {run.path} has no author {author!r}; its authors are "
                           f"{', '.join(run.labels)}")
    return run.labels.index(author)


def filter_logits(logits, allowed, top_k, top_p):
    """``logits`` with padding, "unknown", everything outside the ``top_k`` most likely
    (0 = no limit) and outside the smallest set whose probability reaches ``top_p``
    (1 = no limit) set to -inf. ``top_k`` and ``top_p`` may be tensors."""
    logits = tf.where(allowed[None, :], logits, -np.inf)

    def cut(logits):
        ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
        vocab = tf.shape(logits)[-1]
        k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
        kth = tf.gather(ranked, k - 1, axis=-1)[:, None]
        # The smallest set of most likely tokens whose probability reaches top_p.
        before = tf.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)
        nucleus = tf.reduce_min(tf.where(before < top_p, ranked, np.inf), -1, keepdims=True)
        return tf.where(logits >= tf.maximum(kth, nucleus), logits, -np.inf)

    return tf.cond((top_k > 0) | (top_p < 1.0), lambda: cut(logits), lambda: logits)


@dataclass
class Generator:
    """A trained run ready to generate: its preprocessing, vocabulary and twin for ``samples``."""

    preprocessor: Preprocessor
    vocab: object
    twin: keras.Model
    samples: int

    @classmethod
    def from_run(cls, run: Run | str, samples: int = 1, author: str | None = None) -> "Generator":
        """A generator for an opened run (or a run directory); ``author`` names one author
        of a per-author language-model run, whose head then writes."""
        run = run if isinstance(run, Run) else Run.open(run)
        if author is not None:
            twin = author_twin(run.model, run.components, len(run.vocab), samples,
                               author_index(run, author))
        elif run.head.writes_per_author:
            raise ToolkitError(f"{run.path} holds one language model per author: choose "
                               f"whose style to write with --author (one of "
                               f"{', '.join(run.labels)})")
        else:
            twin = inference_twin(run.model, run.components, len(run.vocab), samples)
        generator = cls(run.preprocessor, run.vocab, twin, samples)
        generator.compile()
        return generator

    def compile(self):
        """Build the twin's feeding function and its compiled sampling loop."""
        if keras.backend.backend() == "jax":
            from toolkit.generate.jax_sampling import compile_for_jax

            self._feed, self._sample_chunk = compile_for_jax(self.twin, len(self.vocab),
                                                             self.samples, CHUNK)
            return
        twin = self.twin
        allowed = tf.constant(~np.isin(np.arange(len(self.vocab)), [PAD, OOV]))

        def feed(tokens):
            """Run tokens through the twin (advancing its state); return the last distribution."""
            return twin(tokens, training=False)[:, -1, :]

        def sample_chunk(token, seed, temperature, top_k, top_p):
            """``CHUNK`` tokens after ``token`` (shape ``(samples,)``), from the twin's state."""
            # Inverse-CDF sampling: the token is where the cumulative distribution passes a
            # uniform number. One number per sample and step, all drawn before the loop:
            # a categorical draw per step (a number per vocabulary entry, under XLA's
            # slow CPU random numbers) made generation about 1.4x slower.
            uniform = tf.random.stateless_uniform([CHUNK, self.samples], seed=seed,
                                                  minval=1e-7, maxval=1.0)
            last = len(self.vocab) - 1

            greedy = temperature <= 0.0  # temperature 0: always the likeliest token
            divisor = tf.where(greedy, 1.0, temperature)

            def step(i, token, drawn):
                probabilities = feed(token[:, None])
                logits = tf.math.log(tf.maximum(probabilities, 1e-30)) / divisor
                logits = filter_logits(logits, allowed, top_k, top_p)
                cumulative = tf.cumsum(tf.nn.softmax(logits), axis=-1)
                # A token of probability 0 adds nothing to the sum, so it is never passed.
                target = uniform[i][:, None] * cumulative[:, -1:]
                drawn_token = tf.reduce_sum(tf.cast(cumulative < target, tf.int32), axis=-1)
                likeliest = tf.argmax(logits, axis=-1, output_type=tf.int32)
                token = tf.minimum(tf.where(greedy, likeliest, drawn_token), last)
                return i + 1, token, drawn.write(i, token)

            drawn = tf.TensorArray(tf.int32, CHUNK)
            _, _, drawn = tf.while_loop(lambda i, *_: i < CHUNK, step, (0, token, drawn))
            return tf.transpose(drawn.stack())

        # Traced per input shape: Keras's TimeDistributed cannot take a masked input
        # whose time dimension is unknown, so shapes stay static.
        self._feed = tf.function(feed)
        self._sample_chunk = tf.function(sample_chunk, jit_compile=not gpu_available())

    def sample(self, last_token: int, length: int, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | None = None) -> np.ndarray:
        """``length`` token ids per sample, continuing the twin's current state after
        ``last_token`` (not yet fed). Shape ``(samples, length)``."""
        rng = np.random.default_rng(seed)
        key = rng.integers(0, 2**31 - 1, size=2)
        token = tf.fill([self.samples], tf.constant(last_token, tf.int32))
        settings = (tf.constant(float(temperature)), tf.constant(int(top_k)),
                    tf.constant(float(top_p)))
        chunks = []
        for k in range(math.ceil(length / CHUNK)):
            seed_k = tf.constant([key[0], key[1] + k * CHUNK], tf.int32)
            chunk = self._sample_chunk(token, seed_k, *settings)
            token = chunk[:, -1]
            chunks.append(np.asarray(chunk))
        return np.concatenate(chunks, axis=1)[:, :length]

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
        reset_states(self.twin)
        if len(ids) > 1:
            self.advance(ids[:-1])
        out = self.sample(int(ids[-1]), length, temperature, top_k, top_p, seed)
        if include_prime:
            out = np.concatenate([np.tile(ids, (self.samples, 1)), out], axis=1)
        return [self.preprocessor.detokenize(self.vocab.decode(row)) for row in out]
