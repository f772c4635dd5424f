"""What a sequence builder is: token ids in, Keras-ready batches out."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class EpochData:
    """Batches ``(inputs, targets, sample_weights)`` that depend on the epoch (offsets, shuffling).

    Subclasses define ``__len__`` (batches per epoch), ``__getitem__(k)`` and
    ``batch_rows`` (``None`` when the last batch may be smaller). The epoch is set
    by the :class:`FollowEpochs` callback from ``fit``'s own epoch number, so a
    resumed run sees exactly the batches it would have seen.
    """

    batch_rows: int | None = None
    length: int

    def __init__(self, first_epoch: int = 0):
        self.epoch = first_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, k):
        raise NotImplementedError

    def signature(self) -> tuple:
        """``tf.TensorSpec``s of ``(inputs, targets, sample_weights)`` (by default all
        ``(batch_rows, length)``)."""
        shape = (self.batch_rows, self.length)
        return (tf.TensorSpec(shape, tf.int32), tf.TensorSpec(shape, tf.int32),
                tf.TensorSpec(shape, tf.float32))

    def dataset(self) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` over one epoch, read afresh each time ``fit`` iterates it.

        Shapes are static where the batch size is fixed: a stateful model needs it.
        """
        dataset = tf.data.Dataset.from_generator(
            lambda: (self[k] for k in range(len(self))), output_signature=self.signature())
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self)))


class FollowEpochs(keras.callbacks.Callback):
    """Tells an :class:`EpochData` which epoch ``fit`` is starting."""

    def __init__(self, data: EpochData):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


class SequenceBuilder:
    """Base for sequence builders.

    ``plan_split`` decides which tokens of which document go to which split (by
    default the last ``validation_fraction`` of every document is validation).
    ``data(split)`` picks what ``training`` and ``validation`` read from a
    :class:`~toolkit.data.Split` (by default its ids end to end).
    ``training(ids, seed, first_epoch)`` and ``validation(ids)`` return
    :class:`EpochData` batches of ``(inputs, targets, sample_weights)`` with inputs of
    shape ``(batch, time)``; their ``dataset()`` is what ``fit`` receives.
    A stateful builder yields exactly ``batch_size`` rows in every batch.
    ``callbacks(training_data)`` gives the callbacks ``fit`` needs with that data.
    """

    stateful: bool = False
    batch_size: int
    length: int

    def plan_split(self, documents, tokens: list[list[str]], validation_fraction: float,
                   seed: int) -> dict:
        """Segments of each split: ``{"train": [Segment, ...], "validation": [...], ...}``,
        given every document and its tokens."""
        from toolkit.data import tail_split

        return tail_split([len(t) for t in tokens], validation_fraction)

    def accept_head(self, head) -> None:
        """Check that this builder can feed ``head`` (streams and windows feed next tokens)."""
        if head.target != "next-token":
            raise ValueError(f"this sequence builder gives next-token targets; the head "
                             f"needs {head.target!r} targets: use sequences.use = \"passages\"")

    def data(self, split, labels=(), training=False):
        """What ``training`` and ``validation`` read from a split (here its ids end to end).

        ``labels`` is the run's author list; ``training`` says it is the training split."""
        return split.concatenated()

    def training(self, ids: np.ndarray, seed: int, first_epoch: int = 0):
        raise NotImplementedError

    def validation(self, ids: np.ndarray):
        raise NotImplementedError

    def callbacks(self, training_data) -> list[keras.callbacks.Callback]:
        if isinstance(training_data, EpochData):
            return [FollowEpochs(training_data)]
        return []
