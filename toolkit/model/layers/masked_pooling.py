import keras
from keras import ops


@keras.saving.register_keras_serializable(package="toolkit")
class MaskedPooling(keras.layers.Layer):
    """Pools a sequence over time, ignoring masked (padding) steps.

    ``mode`` is ``"last"`` (the output at the last real step; padding must be on the
    right), ``"mean"``, ``"max"``, or ``"concat"`` (the three side by side). Without a
    mask every step counts.

    Args:
        mode: str. One of "last", "mean", "max", "concat".
    """

    MODES = ("last", "mean", "max", "concat")

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, received {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        weights = ops.cast(mask, inputs.dtype)[:, :, None]
        pooled = {}
        if self.mode in ("mean", "concat"):
            pooled["mean"] = ops.sum(inputs * weights, axis=1) / ops.maximum(
                ops.sum(weights, axis=1), 1.0)
        if self.mode in ("max", "concat"):
            lowest = ops.min(inputs) - 1.0
            pooled["max"] = ops.max(ops.where(weights > 0, inputs, lowest), axis=1)
        if self.mode in ("last", "concat"):
            last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
            pooled["last"] = ops.take_along_axis(inputs, last[:, None, None], axis=1)[:, 0]
        if self.mode == "concat":
            return ops.concatenate([pooled["last"], pooled["mean"], pooled["max"]], axis=-1)
        return pooled[self.mode]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        width = input_shape[-1] * (3 if self.mode == "concat" else 1)
        return (input_shape[0], width)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
