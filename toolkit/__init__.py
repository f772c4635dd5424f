"""Train stateful LSTM text models with Keras: style generation on a shared stateful core.

The toolkit runs on Keras 3 with the TensorFlow backend: stateful layers, the
compiled sampling loop and the inference twin rely on it.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
