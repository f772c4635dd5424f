"""``FastLSTM``: ``keras.layers.LSTM`` with a faster training loop on the CPU.

Keras's generic LSTM loop (what runs without cuDNN) multiplies the inputs by the
input kernel inside the time loop and lets autodiff differentiate the loop step by
step. Here, on the TensorFlow backend without a GPU:

- the input projection ``x @ W + b`` is one matrix product over the whole window;
- only the recurrent product ``h @ U`` and the gates run inside the ``while_loop``;
- the backward pass is written out (``tf.custom_gradient``): one product per step
  for ``dh``, and the recurrent kernel's gradient as one product after the loop;
- the layer supports XLA (``jit_compile``), which fuses each step's gate arithmetic.

Weights, their layout (gates ``i, f, c, o``), masking (a masked step keeps the state
and repeats the previous output), statefulness and ``get_config()`` are exactly those
of ``keras.layers.LSTM``, so weights move freely between the two. Where the fast path
does not apply (a GPU, where Keras uses cuDNN; dropout; recurrent dropout; other
activations; ``go_backwards``; ``unroll``) the layer is Keras's LSTM unchanged.

Per-row state resets, which Keras lacks: ``layer(x, resets=r)`` with ``r`` of shape
``(batch, time)`` zeroes row ``b``'s state just before step ``t`` wherever
``r[b, t] == 1``, inside one batch, so a stateful stream can cross from one document
into the next without carrying the first one's state over. Resets need the hoisted
loop (a plain LSTM on TensorFlow); on a GPU it then runs instead of cuDNN.
``layer(x, starts=s)`` with ``s`` of shape ``(batch,)`` zeroes only before the first
step (documents aligned to batches): every kernel stays open, cuDNN included.
"""

from __future__ import annotations

import keras

from toolkit.backend import gpu_available


def _sequence_loop(xw, h0, c0, recurrent_kernel, mask, keep=None):
    """Run the LSTM recurrence over precomputed input projections.

    ``xw``: ``(time, batch, 4 * units)``, the inputs times the kernel plus the bias;
    ``mask``: ``(time, batch, 1)`` floats or ``None``; ``keep``: ``(time, batch, 1)``,
    0 where a row's state is zeroed before the step (a reset), 1 elsewhere, or ``None``.
    Returns ``(outputs, h, c)`` with ``outputs`` of shape ``(time, batch, units)``.
    """
    import tensorflow as tf

    n = recurrent_kernel.shape[0]

    def gates(z):
        return (tf.sigmoid(z[:, :n]), tf.sigmoid(z[:, n:2 * n]),
                tf.tanh(z[:, 2 * n:3 * n]), tf.sigmoid(z[:, 3 * n:]))

    @tf.custom_gradient
    def loop(xw, h0, c0, u):
        steps = tf.shape(xw)[0]

        def step(t, h, c, hs, cs, gs):
            if keep is not None:
                h, c = keep[t] * h, keep[t] * c
            i, f, g, o = gates(xw[t] + tf.matmul(h, u))
            c_new = f * c + i * g
            h_new = o * tf.tanh(c_new)
            if mask is not None:  # a masked step keeps the state
                c_new = c + mask[t] * (c_new - c)
                h_new = h + mask[t] * (h_new - h)
            return (t + 1, h_new, c_new, hs.write(t, h_new), cs.write(t, c_new),
                    gs.write(t, tf.concat([i, f, g, o], -1)))

        arrays = [tf.TensorArray(xw.dtype, steps) for _ in range(3)]
        _, h, c, hs, cs, gs = tf.while_loop(lambda t, *_: t < steps, step,
                                            (0, h0, c0, *arrays))
        outputs, cells, activations = hs.stack(), cs.stack(), gs.stack()

        def grad(d_outputs, d_h, d_c):
            previous_cells = tf.concat([c0[None], cells[:-1]], 0)
            previous_outputs = tf.concat([h0[None], outputs[:-1]], 0)
            if keep is not None:  # what each step really read
                previous_cells, previous_outputs = keep * previous_cells, keep * previous_outputs
            u_transposed = tf.transpose(u)

            def back(t, dh, dc, dzs):
                t = t - 1
                i, f, g, o = (activations[t][:, k * n:(k + 1) * n] for k in range(4))
                dh = d_outputs[t] + dh
                dh_step, dc_step = (dh, dc) if mask is None else (mask[t] * dh, mask[t] * dc)
                tanh_c = tf.tanh(cells[t])
                dc_new = dc_step + dh_step * o * (1 - tanh_c * tanh_c)
                dz = tf.concat([dc_new * g * i * (1 - i),
                                dc_new * previous_cells[t] * f * (1 - f),
                                dc_new * i * (1 - g * g),
                                dh_step * tanh_c * o * (1 - o)], -1)
                dh_previous = tf.matmul(dz, u_transposed)
                dc_previous = dc_new * f
                if mask is not None:  # a masked step passes its gradient straight back
                    dh_previous += (1 - mask[t]) * dh
                    dc_previous += (1 - mask[t]) * dc
                if keep is not None:  # a reset cuts the gradient to the state before it
                    dh_previous, dc_previous = keep[t] * dh_previous, keep[t] * dc_previous
                return t, dh_previous, dc_previous, dzs.write(t, dz)

            d_h = tf.zeros_like(h0) if d_h is None else d_h
            d_c = tf.zeros_like(c0) if d_c is None else d_c
            _, dh0, dc0, dzs = tf.while_loop(
                lambda t, *_: t > 0, back,
                (steps, d_h, d_c, tf.TensorArray(xw.dtype, steps)))
            dz = dzs.stack()
            du = tf.matmul(tf.reshape(previous_outputs, [-1, n]),
                           tf.reshape(dz, [-1, 4 * n]), transpose_a=True)
            return dz, dh0, dc0, du

        return (outputs, h, c), grad

    return loop(xw, h0, c0, recurrent_kernel)


#: What FastLSTM relies on in Keras: ``RNN.call`` calls ``inner_loop`` with these
#: arguments and takes ``(last_output, outputs, states)`` back.
INNER_LOOP_PARAMETERS = ["self", "sequences", "initial_state", "mask", "training"]


def keras_contract_problems() -> list[str]:
    """What changed in Keras's RNN internals that :class:`FastLSTM` overrides (empty
    when Keras still calls ``inner_loop`` as this layer expects). The tested Keras
    range is in ``pyproject.toml``."""
    import inspect

    problems = []
    for owner in (keras.layers.RNN, keras.layers.LSTM):
        method = getattr(owner, "inner_loop", None)
        if method is None:
            problems.append(f"keras.layers.{owner.__name__} has no inner_loop any more")
            continue
        found = list(inspect.signature(method).parameters)
        if found != INNER_LOOP_PARAMETERS:
            problems.append(f"keras.layers.{owner.__name__}.inner_loop takes {found}, "
                            f"FastLSTM overrides it as {INNER_LOOP_PARAMETERS}")
    call_source = inspect.getsource(keras.layers.RNN.call)
    if "self.inner_loop(" not in call_source:
        problems.append("keras.layers.RNN.call no longer calls self.inner_loop")
    if problems:
        problems.append(f"Keras {keras.__version__} is outside the range FastLSTM was "
                        f"written for: update toolkit/model/layers/fast_lstm.py and the keras "
                        f"range in pyproject.toml")
    return problems


@keras.saving.register_keras_serializable(package="toolkit")
class FastLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` with the input projection hoisted out of the time loop and a
    hand-written backward pass on the CPU (see the module docstring). Same arguments,
    weights and outputs as ``keras.layers.LSTM``."""

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self._resets = None
        if self.uses_fast_loop:
            self.supports_jit = True

    #: ``call(..., starts=)`` zeroes rows' state before the first step (any backend, kernel).
    supports_starts = True

    @property
    def supports_resets(self) -> bool:
        """Whether the hoisted loop can run, which per-row resets need: a plain LSTM
        (no dropout in the cell, tanh and sigmoid, forwards) on TensorFlow."""
        cell = self.cell
        return (keras.backend.backend() == "tensorflow"
                and not cell.dropout and not cell.recurrent_dropout
                and not self.go_backwards and not self.unroll and cell.use_bias
                and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid)

    @property
    def uses_fast_loop(self) -> bool:
        """Whether this layer runs the hoisted loop without resets (plain LSTM, no GPU)."""
        return self.supports_resets and not gpu_available()

    def call(self, sequences, initial_state=None, mask=None, training=False, resets=None,
             starts=None, sequences_mask=None):
        """Keras's LSTM call; ``resets`` ``(batch, time)``: 1 where a row's state is zeroed
        just before that step (see the module docstring); ``starts`` ``(batch,)``: 1 for a
        row whose state is zeroed before the first step, which keeps every kernel
        (cuDNN included) open. Given two tensors, Keras passes the mask of ``sequences``
        as ``sequences_mask`` rather than ``mask``."""
        if mask is None:
            mask = sequences_mask
        if starts is not None:
            if initial_state is None:
                initial_state = (self.states if self.stateful else
                                 self.get_initial_state(keras.ops.shape(sequences)[0]))
            keep = 1 - keras.ops.cast(keras.ops.reshape(starts, (-1, 1)), self.compute_dtype)
            initial_state = [state * keep for state in initial_state]
        if resets is not None and not self.supports_resets:
            raise ValueError(f"layer {self.name!r} cannot reset state per row: resets need "
                             f"a plain LSTM (no recurrent_dropout) on TensorFlow")
        # Keras's RNN.call passes only the sequences, state and mask on to inner_loop.
        self._resets = resets
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)
        finally:
            self._resets = None

    def inner_loop(self, sequences, initial_state, mask, training=False):
        resets = self._resets
        if not self.uses_fast_loop and resets is None:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        import tensorflow as tf

        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        # Fresh tensors: a stateful layer's initial state is its variables, which
        # tf.custom_gradient would otherwise treat as captured variables.
        h0, c0 = (tf.identity(state) for state in initial_state)
        time_major = tf.transpose(sequences, [1, 0, 2])
        xw = tf.einsum("tbe,eg->tbg", time_major, cell.kernel) + cell.bias
        if mask is not None:
            mask = tf.cast(tf.transpose(mask)[:, :, None], xw.dtype)
        keep = None
        if resets is not None:
            keep = 1 - tf.cast(tf.transpose(resets)[:, :, None], xw.dtype)
        outputs, h, c = _sequence_loop(xw, h0, c0, tf.identity(cell.recurrent_kernel), mask,
                                       keep)
        outputs = tf.transpose(outputs, [1, 0, 2])
        outputs.set_shape([*sequences.shape[:2], self.units])  # keep a static time axis
        return h, outputs, [h, c]
