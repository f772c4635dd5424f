"""Continuous batching: concurrent generation requests for one model share one batch.

A :class:`Batcher` owns a thread that samples for every request it holds at once, in
chunks of ``chunk`` tokens. Each request is a row; between chunks, finished and
cancelled requests leave and waiting ones join (up to ``slots`` rows). A row's
recurrent state lives here, not in the model: it starts from zero and is primed with
the request's prime when the request joins, and is carried from chunk to chunk
(:class:`~toolkit.serving.stepper.StepModel`). So 32 clients cost one batch of 32 per
step, not 32 batches of one.

The loop is compiled with XLA (on a CPU) and always runs all ``slots`` rows, free ones
included: XLA's products give a row the same bits only at the same batch shape. Every
request draws its uniform random numbers from its own Philox generator, seeded by the
request's seed, one chunk at a time, and no product mixes rows: a seeded request gets
the same text alone as among others.
"""

from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable

from toolkit.backend import load_tensorflow

load_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf

from toolkit.backend import gpu_available
from toolkit.data.vocab import OOV, PAD
from toolkit.serving.stepper import StepModel

# Tokens sampled per call of the compiled loop; requests join and leave between calls.
CHUNK = 32


@dataclass(eq=False)
class Job:
    """One generation request: its prime (ids), settings, and where its tokens go.

    ``emit(tokens, error)`` is called from the batcher's thread: with an array of new
    token ids after each chunk, then with ``None`` once the request is done (``error``
    says why when it failed)."""

    prime: np.ndarray
    length: int
    emit: Callable
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    # Drawn seeds stay below 2**53, which JavaScript's numbers (the page) hold exactly.
    seed: int = field(default_factory=lambda: secrets.randbits(53))
    produced: int = 0
    cancelled: bool = False

    def __post_init__(self):
        self.random = np.random.Generator(np.random.Philox(self.seed))

    def cancel(self) -> None:
        """Leave the batch at the next chunk boundary (the client went away, or timed out)."""
        self.cancelled = True


def filter_rows(logits, top_k, top_p):
    """Per-row top-k (0: no limit) and top-p (1: no limit) on ``logits`` ``(rows, vocab)``:
    what falls outside becomes -inf."""
    def cut(logits):
        ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
        vocab = tf.shape(logits)[-1]
        k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
        kth = tf.gather(ranked, k - 1, axis=-1, batch_dims=1)[:, None]
        before = tf.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)
        nucleus = tf.reduce_min(tf.where(before < top_p[:, None], ranked, np.inf), -1,
                                keepdims=True)
        return tf.where(logits >= tf.maximum(kth, nucleus), logits, -np.inf)

    return tf.cond(tf.reduce_any((top_k > 0) | (top_p < 1.0)), lambda: cut(logits),
                   lambda: logits)


class Batcher:
    """Samples for many requests at once on one model (see the module docstring)."""

    def __init__(self, step_model: StepModel, slots: int = 32, chunk: int = CHUNK,
                 jit_compile: bool | None = None, name: str = "batcher"):
        self.model, self.slots, self.chunk = step_model, slots, chunk
        self.name = name
        self.jobs: list[Job | None] = [None] * slots
        self.states = [np.zeros((slots, spec.size), np.float32) for spec in step_model.states]
        self.last_token = np.full(slots, 2, np.int32)  # free rows feed any real token
        self.waiting: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.stopping = False
        self.steps = 0  # chunk calls so far, and the rows they carried (for the load test)
        self.rows = 0
        # XLA on the CPU (about 4x faster a step here); None: wherever there is no GPU.
        self.jit_compile = not gpu_available() if jit_compile is None else jit_compile
        self._compile(self.jit_compile)
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _compile(self, jit_compile: bool) -> None:
        model, chunk = self.model, self.chunk
        vocab = model.vocab_size
        allowed = tf.constant(~np.isin(np.arange(vocab), [PAD, OOV]))
        state_specs = [tf.TensorSpec([None, spec.size], tf.float32) for spec in model.states]

        def prime(tokens, states):
            return model(tokens, states, head=False)[1]

        def sample_chunk(token, states, uniform, temperature, top_k, top_p):
            greedy = temperature <= 0.0
            divisor = tf.where(greedy, 1.0, temperature)[:, None]

            def step(i, token, states, drawn):
                probabilities, states = model(token[:, None], states)
                logits = tf.math.log(tf.maximum(probabilities[:, -1], 1e-30)) / divisor
                logits = filter_rows(tf.where(allowed[None, :], logits, -np.inf), top_k, top_p)
                cumulative = tf.cumsum(tf.nn.softmax(logits), axis=-1)
                # Inverse-CDF sampling with the row's own uniform number for this step.
                target = uniform[:, i][:, None] * cumulative[:, -1:]
                drawn_token = tf.reduce_sum(tf.cast(cumulative < target, tf.int32), axis=-1)
                likeliest = tf.argmax(logits, axis=-1, output_type=tf.int32)
                token = tf.minimum(tf.where(greedy, likeliest, drawn_token), vocab - 1)
                return i + 1, token, states, drawn.write(i, token)

            drawn = tf.TensorArray(tf.int32, chunk)
            _, _, states, drawn = tf.while_loop(lambda i, *_: i < chunk, step,
                                                (0, token, states, drawn))
            return tf.transpose(drawn.stack()), states

        rows = tf.TensorSpec([None], tf.float32)
        self._prime = tf.function(prime, jit_compile=jit_compile, input_signature=[
            tf.TensorSpec([None, None], tf.int32), state_specs])
        self._sample_chunk = tf.function(sample_chunk, jit_compile=jit_compile,
                                         input_signature=[
            tf.TensorSpec([None], tf.int32), state_specs,
            tf.TensorSpec([None, chunk], tf.float32), rows,
            tf.TensorSpec([None], tf.int32), rows])

    def warm_up(self) -> None:
        """Trace (and compile) both functions now rather than on the first request."""
        self._prime(tf.constant(padded([2, 2])), self.model.initial_state(1))
        slots = self.slots
        self._sample_chunk(tf.fill([slots], 2), self.model.initial_state(slots),
                           tf.fill([slots, self.chunk], 0.5), tf.ones([slots]),
                           tf.zeros([slots], tf.int32), tf.ones([slots]))

    def submit(self, job: Job) -> Job:
        """Queue ``job``; it joins the batch at the next chunk boundary with a free row."""
        if self.stopping:
            raise RuntimeError("the batcher is stopping")
        self.waiting.put(job)
        self.wake.set()
        return job

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current chunk; requests still held are told the server stops."""
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout)

    @property
    def active(self) -> int:
        return sum(job is not None for job in self.jobs)

    def _admit(self) -> None:
        """Move waiting jobs into free rows, each row's state primed with its prime."""
        for slot in range(self.slots):
            if self.jobs[slot] is not None:
                continue
            try:
                job = self.waiting.get_nowait()
            except queue.Empty:
                return
            if job.cancelled:
                job.emit(None, None)
                continue
            states = self.model.initial_state(1)
            if len(job.prime) > 1:
                states = self._prime(tf.constant(padded(job.prime[:-1])), states)
            for rows, state in zip(self.states, states):
                rows[slot] = np.asarray(state)[0]
            self.last_token[slot] = job.prime[-1]
            self.jobs[slot] = job

    def _finish(self, slot: int, error: str | None = None) -> None:
        job, self.jobs[slot] = self.jobs[slot], None
        for rows in self.states:
            rows[slot] = 0.0
        job.emit(None, error)

    def _run_chunk(self) -> None:
        """One call of the compiled loop for every row, free rows included (their
        tokens are thrown away): XLA gives a row the same bits only at the same batch
        shape, so the shape never changes with the number of requests."""
        uniform = np.full((self.slots, self.chunk), 0.5, np.float32)
        temperature = np.ones(self.slots, np.float32)
        top_k = np.zeros(self.slots, np.int32)
        top_p = np.ones(self.slots, np.float32)
        held = [(slot, job) for slot, job in enumerate(self.jobs) if job is not None]
        for slot, job in held:
            uniform[slot] = job.random.random(self.chunk, dtype=np.float32)
            temperature[slot], top_k[slot], top_p[slot] = job.temperature, job.top_k, job.top_p
        # never 0: a token of probability 0 is never drawn
        np.maximum(uniform, 1e-7, out=uniform)
        tokens, states = self._sample_chunk(
            tf.constant(self.last_token), [tf.constant(rows) for rows in self.states],
            tf.constant(uniform), tf.constant(temperature), tf.constant(top_k),
            tf.constant(top_p))
        tokens = np.asarray(tokens)
        self.states = [np.array(state) for state in states]
        self.last_token = tokens[:, -1].copy()
        self.steps += 1
        self.rows += len(held)
        for slot, job in held:
            wanted = min(self.chunk, job.length - job.produced)
            job.produced += wanted
            job.emit(tokens[slot, :wanted], None)
            if job.produced >= job.length:
                self._finish(slot)

    def _loop(self) -> None:
        while not self.stopping:
            self.wake.clear()
            for slot, job in enumerate(self.jobs):
                if job is not None and job.cancelled:
                    self._finish(slot)
            try:
                self._admit()
                if self.active:
                    self._run_chunk()
                    continue
            except Exception as err:  # a fault in the model: fail the rows, keep serving
                message = f"generation failed: {type(err).__name__}: {err}"
                for slot, job in enumerate(self.jobs):
                    if job is not None:
                        self._finish(slot, message)
            self.wake.wait(timeout=1.0)
        for slot, job in enumerate(self.jobs):
            if job is not None:
                self._finish(slot, "the server is stopping")
        while not self.waiting.empty():
            self.waiting.get_nowait().emit(None, "the server is stopping")


def padded(ids) -> np.ndarray:
    """``ids`` as one row, padded on the left to a power of two (at least 8) with the
    padding id: a few shapes for XLA to compile, and a padding step before any real one
    leaves the zero state exactly as it was (the mask keeps the state). The padding
    depends on the prime alone, so a prime is computed alike whatever else runs."""
    length = max(8, 1 << (len(ids) - 1).bit_length())
    row = np.full((1, length), PAD, np.int32)
    row[0, length - len(ids):] = ids
    return row
