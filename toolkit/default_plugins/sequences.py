"""Built-in sequence builders: stateful streams and stateless overlapping windows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from toolkit.errors import ToolkitError
from toolkit.hookspecs import EpochData, SequenceBuilder, hookimpl
from toolkit.config.params import NonNegativeInt, PositiveInt
from toolkit.data.vocab import OOV as OOV_ID, PAD as PAD_ID


@dataclass
class TokenStream:
    """The ids a stream builder reads: one split's segments end to end (``ids``, which may
    be memory-mapped), and ``starts``, the sorted positions where a document other than
    the first begins. Empty ``starts``: one text, or documents joined as one."""

    ids: np.ndarray
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids)


def as_stream(data) -> TokenStream:
    """A :class:`TokenStream` from a builder's data, or from plain ids (one document)."""
    return data if isinstance(data, TokenStream) else TokenStream(np.asarray(data))


class StreamLayout:
    """``ids[offset:]`` laid out as ``batch_size`` contiguous streams cut into windows.

    Row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``. Batch ``k`` is
    ``(x, y, w, resets)``, each ``(batch_size, length)``: ``y`` is ``x`` shifted by one
    token; ``w`` is 1 for trained pairs and 0 for the padding (id 0) that fills the end
    of the streams and for a pair whose target begins another document; ``resets`` is
    1 where ``x`` is the first token of a document (the row's state must start from
    zero there). Every stream has ``ceil((len(ids) - 1) / batch_size)`` positions
    whatever the offset, so the number of batches never changes. Batches are read
    from ``ids`` when asked for: memory-mapped ids are never loaded whole.
    """

    def __init__(self, stream: TokenStream, batch_size: int, length: int, offset: int = 0):
        self.ids, self.batch_size, self.length, self.offset = stream.ids, batch_size, length, offset
        self.starts = np.asarray(stream.starts, np.int64)
        self.row_length = math.ceil((len(self.ids) - 1) / batch_size)
        self.num_batches = math.ceil(self.row_length / length)
        rows = np.arange(batch_size)
        self.row_begin = offset + rows * self.row_length
        last = len(self.ids) - 1  # the last position with a next token
        self.row_end = np.minimum(self.row_begin + self.row_length, last)

    def __len__(self) -> int:
        return self.num_batches

    def is_start(self, positions: np.ndarray) -> np.ndarray:
        """Whether each position is the first token of a document after the first."""
        if not len(self.starts):
            return np.zeros(positions.shape, bool)
        index = np.searchsorted(self.starts, positions)
        found = np.minimum(index, len(self.starts) - 1)
        return (index < len(self.starts)) & (self.starts[found] == positions)

    def __getitem__(self, k):
        positions = self.row_begin[:, None] + k * self.length + np.arange(self.length)
        real = positions < self.row_end[:, None]
        safe = np.where(real, positions, 0)
        x = np.where(real, self.ids[safe], 0).astype(np.int32)
        y = np.where(real, self.ids[safe + 1], 0).astype(np.int32)
        resets = real & self.is_start(positions)
        w = real & ~self.is_start(positions + 1)
        return x, y, w.astype(np.float32), resets.astype(np.float32)


class AlignedLayout:
    """Documents laid out so that each begins at the start of a window, as ``batch_size`` rows.

    Every document is cut into windows of ``length`` pairs, the last one padded (id 0,
    weight 0); the windows of all documents, in order, are dealt to the rows as
    contiguous runs, so row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``
    and a row crosses from one document into the next only between two batches.
    Batch ``k`` is ``(x, y, w, starts)``: ``x``, ``y``, ``w`` as in
    :class:`StreamLayout`, ``(batch_size, length)``; ``starts``, ``(batch_size,)``, is 1
    for a row whose window is the first of a document (its state must be zeroed before
    the batch), so the recurrent core needs no per-step resets and can run its fastest
    kernel (cuDNN on a GPU).

    ``offset`` moves the window edges from epoch to epoch without dropping a token: the
    first window of every document holds only its first ``length - offset % length``
    pairs, then padding (masked, so the state carries over it into the next window),
    and the later windows follow on. ``max_offset`` (the largest offset the epochs
    draw, plus one) sizes every document for the largest shift, so the number of
    windows, and of batches, is the same whatever the offset. A window with no real
    position (past the end of the data) begins with id 1 (weight 0) rather than 0:
    cuDNN refuses a row whose mask is all padding, and a single unmasked step keeps
    Keras's loss, which divides by the unmasked positions, almost unchanged.
    """

    def __init__(self, stream: TokenStream, batch_size: int, length: int, offset: int = 0,
                 max_offset: int = 0):
        self.stream = stream
        self.ids, self.batch_size, self.length, self.offset = stream.ids, batch_size, length, offset
        bounds = np.concatenate([[0], np.asarray(stream.starts, np.int64), [len(self.ids)]])
        begin, stop = bounds[:-1], bounds[1:]
        pairs = np.maximum(stop - begin - 1, 0)
        shift = offset % length
        largest = min(max(max_offset - 1, shift), length - 1)
        windows = np.where(pairs > 0, -(-(pairs + largest) // length), 0)
        document = np.repeat(np.arange(len(pairs)), windows)
        first = np.concatenate([[0], np.cumsum(windows)[:-1]])
        within = np.arange(len(document)) - first[document]
        # window 0 holds length - shift pairs; window w > 0 starts where the one before ended
        self.window_begin = begin[document] + np.maximum(within * length - shift, 0)
        end = stop[document] - 1  # exclusive: the last pair's position is stop - 2
        room = np.where(within == 0, length - shift, length)
        self.window_count = np.clip(end - self.window_begin, 0, room)
        self.window_first = within == 0
        self.num_windows = len(document)
        self.num_batches = -(-self.num_windows // batch_size)
        self.padded_positions = self.num_batches * batch_size * length - int(pairs.sum())

    def __len__(self) -> int:
        return self.num_batches

    @property
    def padding_share(self) -> float:
        """The share of the layout's positions (at offset 0) that are padding."""
        return self.padded_positions / max(self.num_batches * self.batch_size * self.length, 1)

    def __getitem__(self, k):
        window = np.arange(self.batch_size) * self.num_batches + k
        valid = window < self.num_windows
        window = np.where(valid, window, 0)
        steps = np.arange(self.length)
        positions = self.window_begin[window, None] + steps
        real = valid[:, None] & (steps < self.window_count[window, None])
        safe = np.where(real, positions, 0)
        x = np.where(real, self.ids[safe], PAD_ID).astype(np.int32)
        x[~real.any(axis=1), 0] = OOV_ID  # one unmasked step: cuDNN refuses an all-padding row
        y = np.where(real, self.ids[safe + 1], 0).astype(np.int32)
        starts = valid & self.window_first[window]
        return x, y, real.astype(np.float32), starts.astype(np.float32)


#: The extra padding share of aligned documents above which training suggests "separate".
PADDING_NOTE = 0.10

LAYOUTS = {"aligned": AlignedLayout, "separate": StreamLayout, "joined": StreamLayout}


def stream_layout(ids, batch_size: int, length: int, offset: int = 0,
                  documents: str = "separate", max_offset: int | None = None):
    """Every batch of the layout of ``documents`` at once: ``(x, y, w, resets)`` (or
    ``starts`` for ``"aligned"``, sized for offsets below ``max_offset``, default
    ``length``), stacked over the batches. ``ids`` is a :class:`TokenStream` or plain ids."""
    extra = {"max_offset": length if max_offset is None else max_offset} \
        if documents == "aligned" else {}
    layout = LAYOUTS[documents](as_stream(ids), batch_size, length, offset, **extra)
    batches = [layout[k] for k in range(len(layout))]
    return tuple(np.stack(part) for part in zip(*batches))


class StreamData(EpochData):
    """Stream batches in time order, laid out anew with the offset of each epoch.

    The inputs are the token ids alone (``documents = "joined"``), or
    ``{"tokens": x, "resets": r}`` (``"separate"``: per-step resets), or
    ``{"tokens": x, "starts": s}`` (``"aligned"``: rows whose state is zeroed before
    the batch).
    """

    def __init__(self, stream: TokenStream, batch_size, length,
                 offset_for_epoch: Callable[[int], int], documents: str = "joined",
                 max_offset: int = 0):
        super().__init__()
        self.max_offset = max_offset
        self.stream, self.batch_size, self.length = stream, batch_size, length
        self.batch_rows = batch_size
        self.offset_for_epoch = offset_for_epoch
        self.documents = documents
        self.extra = {"aligned": "starts", "separate": "resets"}.get(documents)
        self.arrange()

    @property
    def ids(self):
        return self.stream.ids

    def arrange(self):
        self.offset = self.offset_for_epoch(self.epoch)
        extra = {"max_offset": self.max_offset} if self.documents == "aligned" else {}
        self.layout = LAYOUTS[self.documents](self.stream, self.batch_size, self.length,
                                              self.offset, **extra)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if self.offset_for_epoch(epoch) != self.offset:
            self.arrange()

    def __len__(self):
        return len(self.layout)

    def __getitem__(self, k):
        if k < 0 or k >= len(self):
            raise IndexError(k)
        x, y, w, flags = self.layout[k]
        return ({"tokens": x, self.extra: flags} if self.extra else x), y, w

    def signature(self):
        import tensorflow as tf

        tokens, targets, weights = super().signature()
        if self.extra == "resets":
            tokens = {"tokens": tokens, "resets": tf.TensorSpec(tokens.shape, tf.float32)}
        elif self.extra == "starts":
            tokens = {"tokens": tokens, "starts": tf.TensorSpec(tokens.shape[:1], tf.float32)}
        return tokens, targets, weights


class StreamBuilder(SequenceBuilder):
    """Stateful streams: the text as ``batch_size`` contiguous streams, state carried across batches.

    Gradients stop at window edges (truncated BPTT over ``length`` tokens); the state
    does not. With ``offset = "random"`` every epoch skips a fresh random number of
    leading tokens (fewer than ``max_offset``, default ``length``), so window edges
    move and the model cannot learn positions instead of content.

    ``documents`` says how a row goes from one document to the next (docs/stateful.md):

    - ``"aligned"`` (the default): every document begins at the start of a window, its
      last window padded; a row that begins a document has its state zeroed before
      that batch. No pair spans two documents and the core runs without per-step
      resets: its fastest kernel (cuDNN on a GPU). On every shipped corpus the
      padding adds at most one batch (``benchmarks/padding.py``); training says so
      when it would add more than 10 %. The random offset shortens every document's
      first window instead of dropping tokens.
    - ``"separate"``: documents follow each other inside a row with no padding; the
      row's state starts from zero at a document's first token, inside the batch (the
      core's per-step resets, which keep cuDNN off). For corpora of many documents
      much shorter than a window, where aligned padding would cost more.
    - ``"joined"``: the documents read as one text, as runs made before this setting
      existed did.
    """

    stateful = True

    def __init__(self, batch_size: PositiveInt = 64, length: PositiveInt = 100,
                 offset: Literal["random", "none"] = "random",
                 max_offset: NonNegativeInt | None = None,
                 documents: Literal["aligned", "separate", "joined"] = "aligned"):
        self.batch_size = batch_size
        self.length = length
        self.offset = offset
        self.max_offset = length if max_offset is None else max_offset
        self.documents = documents

    @property
    def resets_state(self) -> bool:
        """Whether the model takes per-step ``resets`` beside the tokens."""
        return self.documents == "separate"

    @property
    def starts_state(self) -> bool:
        """Whether the model takes per-row ``starts`` (state zeroed before the batch)."""
        return self.documents == "aligned"

    def data(self, split, labels=(), training=False) -> TokenStream:
        """The split's segments end to end, with where each document after the first
        begins (a document's training text and its validation tail are segments)."""
        ids = split.concatenated()
        if self.documents == "joined":
            return TokenStream(ids)
        return TokenStream(ids, split.starts())

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

    def training(self, data, seed):
        stream = as_stream(data)
        reserve = 0 if self.offset == "none" else max(self.max_offset - 1, 0)
        self.check_size(stream, "training", reserve)
        largest = 0 if self.offset == "none" else self.max_offset
        training = StreamData(stream, self.batch_size, self.length, self.offsets(seed),
                              self.documents, largest)
        if self.documents == "aligned":
            self.check_windows(training.layout, "training")
            self.check_padding(training.layout)
        return training

    def check_windows(self, layout, what: str) -> None:
        """Refuse aligned streams with no window at all (no document of two tokens)."""
        if not layout.num_windows:
            raise ToolkitError(f"the {what} split has no document of two tokens or more, so "
                               f"sequences.documents = \"aligned\" has nothing to train or "
                               f"score; use longer documents, or documents = \"joined\" to "
                               f"read them as one text")

    def check_padding(self, layout: "AlignedLayout") -> None:
        """Say so (on standard error) when aligning documents to windows pads more than
        ``PADDING_NOTE`` of the training positions beyond what packing them would."""
        import sys

        packed = StreamLayout(layout.stream, self.batch_size, self.length)
        extra = 1 - len(packed) / max(len(layout), 1)
        if extra > PADDING_NOTE:
            print(f"note: sequences.documents = \"aligned\" pads {layout.padding_share:.0%} of "
                  f"the training positions ({len(layout)} batches against {len(packed)} "
                  f"packed): with documents this much shorter than sequences.length = "
                  f"{self.length}, documents = \"separate\" trains faster on a CPU (on a GPU "
                  f"it gives up cuDNN)", file=sys.stderr)

    def validation(self, data):
        stream = as_stream(data)
        self.check_size(stream, "validation")
        validation = StreamData(stream, self.batch_size, self.length, lambda epoch: 0,
                                self.documents)
        if self.documents == "aligned":
            self.check_windows(validation.layout, "validation")
        return validation

    def callbacks(self, training_data):
        from toolkit.model.state import StateResets

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
