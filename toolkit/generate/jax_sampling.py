"""Generation on Keras's JAX backend: the same sampling as :mod:`toolkit.generate.sampling`.

On JAX a compiled function cannot assign variables, and Keras does not count a
stateful RNN's ``rnn_state`` variables among the model's variables (so
``stateless_call`` would freeze them at their traced values). The twin therefore runs
inside a ``StatelessScope`` that maps its weights *and* every recurrent state variable
to values passed in, under ``jax.jit``; the states it assigns come back out and are
written to the variables after each call. The
loop draws ``chunk`` tokens per call with the same rules as the TensorFlow loop: the
temperature (0: the likeliest token), top-k, top-p, padding and "unknown" never
drawn, and inverse-CDF draws from one uniform number per sample and step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

from toolkit.data.vocab import OOV, PAD
from toolkit.model.state import stateful_layers


def filter_logits(logits, allowed, top_k, top_p):
    """``logits`` with padding, "unknown", all but the ``top_k`` likeliest (0: no limit)
    and all outside the smallest set whose probability reaches ``top_p`` at -inf."""
    logits = jnp.where(allowed[None, :], logits, -jnp.inf)
    ranked = -jnp.sort(-logits, axis=-1)
    vocab = logits.shape[-1]
    k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
    kth = jnp.take(ranked, k - 1, axis=-1)[:, None]
    before = jnp.cumsum(jax.nn.softmax(ranked), axis=-1) - jax.nn.softmax(ranked)
    nucleus = jnp.min(jnp.where(before < top_p, ranked, jnp.inf), -1, keepdims=True)
    cut = jnp.where(logits >= jnp.maximum(kth, nucleus), logits, -jnp.inf)
    return jnp.where((top_k > 0) | (top_p < 1.0), cut, logits)


def compile_for_jax(twin, vocab_size: int, samples: int, chunk: int):
    """``(feed, sample_chunk)`` for :class:`~toolkit.generate.sampling.Generator` on JAX:
    ``feed(tokens)`` advances the twin and returns the distributions after the last
    token; ``sample_chunk(token, seed, temperature, top_k, top_p)`` draws ``chunk``
    tokens per sample after ``token``, advancing the twin."""
    allowed = jnp.asarray(~np.isin(np.arange(vocab_size), [PAD, OOV]))

    weights = list(twin.weights)
    states = [v for layer in stateful_layers(twin) for v in layer.states]

    def step_twin(values, state, tokens):
        mapping = list(zip(weights, values)) + list(zip(states, state))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = twin(tokens, training=False)
        state = [scope.get_current_value(v) for v in states]
        return outputs[:, -1, :], state

    def draw(trainable, state, token, seed, temperature, top_k, top_p):
        key = jax.random.fold_in(jax.random.PRNGKey(seed[0]), seed[1])
        uniform = jax.random.uniform(key, (chunk, samples), minval=1e-7, maxval=1.0)
        greedy = temperature <= 0.0
        divisor = jnp.where(greedy, 1.0, temperature)

        def step(i, carry):
            state, token, drawn = carry
            probabilities, state = step_twin(trainable, state, token[:, None])
            logits = jnp.log(jnp.maximum(probabilities, 1e-30)) / divisor
            logits = filter_logits(logits, allowed, top_k, top_p)
            cumulative = jnp.cumsum(jax.nn.softmax(logits), axis=-1)
            target = uniform[i][:, None] * cumulative[:, -1:]
            drawn_token = jnp.sum(cumulative < target, axis=-1).astype(jnp.int32)
            likeliest = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            token = jnp.minimum(jnp.where(greedy, likeliest, drawn_token), vocab_size - 1)
            return state, token, drawn.at[i].set(token)

        drawn = jnp.zeros((chunk, samples), jnp.int32)
        state, _, drawn = jax.lax.fori_loop(0, chunk, step, (state, token, drawn))
        return drawn.T, state

    feed_jit, draw_jit = jax.jit(step_twin), jax.jit(draw)

    def variables():
        return [v.value for v in weights], [v.value for v in states]

    def write_back(state):
        for variable, value in zip(states, state):
            variable.assign(value)

    def feed(tokens):
        trainable, state = variables()
        probabilities, state = feed_jit(trainable, state, jnp.asarray(np.asarray(tokens)))
        write_back(state)
        return probabilities

    def sample_chunk(token, seed, temperature, top_k, top_p):
        trainable, state = variables()
        drawn, state = draw_jit(trainable, state, *(jnp.asarray(np.asarray(value)) for value in
                                                    (token, seed, temperature, top_k, top_p)))
        write_back(state)
        return drawn

    return feed, sample_chunk
