"""The toolkit's Keras layers: outputs, masks, config round trips, errors."""

import keras
import numpy as np
import pytest

from toolkit.model.layers import OneHotEncoding, ScaledId


@pytest.mark.parametrize("layer_class,width", [(OneHotEncoding, 5), (ScaledId, 1)])
def test_layers_mask_padding_and_round_trip_their_config(layer_class, width):
    layer = layer_class(5)
    ids = np.array([[3, 1, 0]], np.int32)
    out = np.asarray(layer(ids))
    assert out.shape == (1, 3, width)
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, False]])
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is layer_class and again.vocab_size == 5
    with pytest.raises(ValueError, match="Received: vocab_size=1"):
        layer_class(1)


def test_one_hot_values():
    out = np.asarray(OneHotEncoding(4)(np.array([[2, 0]], np.int32)))
    np.testing.assert_array_equal(out[0], [[0, 0, 1, 0], [1, 0, 0, 0]])
