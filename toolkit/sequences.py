"""What a sequence builder is: token ids in, Keras-ready batches out."""

from __future__ import annotations

import keras
import numpy as np


class EpochData(keras.utils.PyDataset):
    """A ``PyDataset`` whose batches depend on the epoch (offsets, shuffling).

    The epoch is set by the :class:`FollowEpochs` callback from ``fit``'s own epoch
    number, not counted from ``on_epoch_end`` calls (Keras makes an extra one when
    ``fit`` starts), so a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, first_epoch: int = 0):
        super().__init__()
        self.epoch = first_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class FollowEpochs(keras.callbacks.Callback):
    """Tells an :class:`EpochData` which epoch ``fit`` is starting."""

    def __init__(self, data: EpochData):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


class SequenceBuilder:
    """Base for sequence builders.

    ``training(ids, seed, first_epoch)`` and ``validation(ids)`` return data that
    ``Model.fit`` accepts (usually a :class:`keras.utils.PyDataset`) yielding
    ``(inputs, targets, sample_weights)`` with inputs of shape ``(batch, time)``.
    A stateful builder yields exactly ``batch_size`` rows in every batch.
    ``callbacks(training_data)`` gives the callbacks ``fit`` needs with that data.
    """

    stateful: bool = False
    batch_size: int
    length: int

    def training(self, ids: np.ndarray, seed: int, first_epoch: int = 0):
        raise NotImplementedError

    def validation(self, ids: np.ndarray):
        raise NotImplementedError

    def callbacks(self, training_data) -> list[keras.callbacks.Callback]:
        if isinstance(training_data, EpochData):
            return [FollowEpochs(training_data)]
        return []
