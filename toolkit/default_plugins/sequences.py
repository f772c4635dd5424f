"""Built-in sequence builders: stateful streams and stateless overlapping windows."""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.hookspecs import EpochData, SequenceBuilder, hookimpl
from toolkit.params import NonNegativeInt, PositiveInt


def stream_layout(ids: np.ndarray, batch_size: int, length: int, offset: int = 0):
    """Lay ``ids[offset:]`` out as ``batch_size`` contiguous streams cut into windows.

    Returns ``(x, y, w)``, each of shape ``(num_batches, batch_size, length)``: row
    ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``; ``y`` is ``x`` shifted
    by one token; ``w`` is 1 for real positions and 0 for the padding (id 0) that fills
    the end of the streams. Every stream has ``ceil((len(ids) - 1) / batch_size)``
    positions whatever the offset, so the number of batches never changes.
    """
    pairs = len(ids) - 1
    row_length = math.ceil(pairs / batch_size)
    num_batches = math.ceil(row_length / length)
    span = num_batches * length
    x = np.zeros((batch_size, span), np.int32)
    y = np.zeros((batch_size, span), np.int32)
    w = np.zeros((batch_size, span), np.float32)
    usable = ids[offset:]
    for row in range(batch_size):
        start = row * row_length
        stop = min(start + row_length, len(usable) - 1)
        n = stop - start
        if n <= 0:
            break
        x[row, :n] = usable[start:stop]
        y[row, :n] = usable[start + 1:stop + 1]
        w[row, :n] = 1.0

    def by_batch(a):
        return a.reshape(batch_size, num_batches, length).transpose(1, 0, 2)

    return by_batch(x), by_batch(y), by_batch(w)


class StreamData(EpochData):
    """Stream batches in time order, laid out anew with the offset of each epoch."""

    def __init__(self, ids, batch_size, length, offset_for_epoch: Callable[[int], int]):
        super().__init__()
        self.ids, self.batch_size, self.length = ids, batch_size, length
        self.batch_rows = batch_size
        self.offset_for_epoch = offset_for_epoch
        self.arrange()

    def arrange(self):
        self.offset = self.offset_for_epoch(self.epoch)
        self.x, self.y, self.w = stream_layout(self.ids, self.batch_size, self.length,
                                               self.offset)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if self.offset_for_epoch(epoch) != self.offset:
            self.arrange()

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, k):
        return self.x[k], self.y[k], self.w[k]


class StreamBuilder(SequenceBuilder):
    """Stateful streams: the text as ``batch_size`` contiguous streams, state carried across batches.

    Gradients stop at window edges (truncated BPTT over ``length`` tokens); the state
    does not. With ``offset = "random"`` every epoch skips a fresh random number of
    leading tokens (fewer than ``max_offset``, default ``length``), so window edges
    move and the model cannot learn positions instead of content.
    """

    stateful = True

    def __init__(self, batch_size: PositiveInt = 64, length: PositiveInt = 100,
                 offset: Literal["random", "none"] = "random",
                 max_offset: NonNegativeInt | None = None):
        self.batch_size = batch_size
        self.length = length
        self.offset = offset
        self.max_offset = length if max_offset is None else max_offset

    def offsets(self, seed: int) -> Callable[[int], int]:
        if self.offset == "none" or self.max_offset <= 1:
            return lambda epoch: 0
        return lambda epoch: int(np.random.default_rng([seed, epoch]).integers(self.max_offset))

    def check_size(self, ids, what: str, reserve: int = 0) -> None:
        """Refuse a split too short for the streams, naming the setting that binds."""
        pairs = len(ids) - 1
        grow = ("raise train.validation_fraction" if what == "validation"
                else "use a longer text")
        if pairs < 1:
            raise ToolkitError(f"the {what} split has {len(ids)} token(s): too few to predict "
                               f"even one next token; {grow}")
        if pairs < self.batch_size:
            raise ToolkitError(f"the {what} split has {len(ids)} tokens, too few for "
                               f"sequences.batch_size = {self.batch_size} streams of at least "
                               f"one token each; lower batch_size to at most {pairs} or {grow}")
        if pairs - reserve < self.batch_size:
            raise ToolkitError(f"the {what} split has {len(ids)} tokens, and the random offset "
                               f"of up to {reserve} tokens (sequences.max_offset, which "
                               f"defaults to length = {self.length}) leaves too few for "
                               f"{self.batch_size} streams; set sequences.max_offset to at most "
                               f"{pairs - self.batch_size + 1}, or offset = \"none\"")
        row = math.ceil((pairs - reserve) / self.batch_size)
        if what == "training" and self.length > row:
            raise ToolkitError(f"sequences.length = {self.length} is longer than each of the "
                               f"{self.batch_size} training streams ({row} tokens), so every "
                               f"window would be mostly padding; lower length to at most "
                               f"{row} or lower sequences.batch_size")

    def training(self, ids, seed):
        reserve = 0 if self.offset == "none" else max(self.max_offset - 1, 0)
        self.check_size(ids, "training", reserve)
        return StreamData(ids, self.batch_size, self.length, self.offsets(seed))

    def validation(self, ids):
        self.check_size(ids, "validation")
        return StreamData(ids, self.batch_size, self.length, lambda epoch: 0)

    def callbacks(self, training_data):
        from toolkit.state import StateResets

        return [StateResets()]


class WindowData(EpochData):
    """Overlapping windows starting every ``step`` tokens, shuffled anew for each epoch."""

    def __init__(self, ids, batch_size, length, step, seed=None, warmup=0):
        super().__init__()
        self.ids, self.batch_size, self.length = ids, batch_size, length
        self.starts = np.arange(0, len(ids) - length, step)
        self.seed = seed
        # Warm-up positions weigh 0. Keras divides a masked loss by the number of real
        # positions, warm-up included, so the scored ones weigh length / scored: the
        # logged loss is then the mean over scored tokens (the metrics are unchanged,
        # since they divide by the weights).
        self.weights = np.full(length, length / (length - warmup), np.float32)
        self.weights[:warmup] = 0.0
        self.order = self.shuffled()

    def shuffled(self):
        if self.seed is None:
            return self.starts
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.starts)

    def __len__(self):
        return math.ceil(len(self.starts) / self.batch_size)

    def __getitem__(self, k):
        starts = self.order[k * self.batch_size:(k + 1) * self.batch_size]
        index = starts[:, None] + np.arange(self.length + 1)
        windows = self.ids[index]
        return windows[:, :-1], windows[:, 1:], np.tile(self.weights, (len(starts), 1))

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.order = self.shuffled()


class WindowBuilder(SequenceBuilder):
    """Stateless overlapping windows (the classic Keras character example), shuffled each epoch.

    Windows of ``length`` tokens start every ``step`` tokens; every position predicts
    its next token, and the state starts from zero in every window. Validation windows
    overlap by half: only the second half of each is scored, so every validation
    token is counted once, predicted from ``length // 2`` to ``length - 1`` tokens of
    context (close to the classic example's "next character after a window").
    """

    stateful = False

    def __init__(self, batch_size: PositiveInt = 128, length: PositiveInt = 40,
                 step: PositiveInt = 3):
        self.batch_size, self.length, self.step = batch_size, length, step

    def check_size(self, ids, what):
        if len(ids) <= self.length:
            raise ToolkitError(
                f"the {what} split has {len(ids)} tokens, fewer than one window of "
                f"sequences.length = {self.length}; lower it or use a longer text")

    def training(self, ids, seed):
        self.check_size(ids, "training")
        return WindowData(ids, self.batch_size, self.length, self.step, seed)

    def validation(self, ids):
        self.check_size(ids, "validation")
        warmup = self.length // 2
        return WindowData(ids, self.batch_size, self.length, self.length - warmup,
                          warmup=warmup)


@hookimpl
def register_sequence_builders(register):
    register("stream", StreamBuilder)
    register("windows", WindowBuilder)
