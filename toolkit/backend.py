"""Loading TensorFlow quietly, and only when a model is needed.

TensorFlow's C++ start-up writes lines straight to the process's stderr (absl's
"WARNING: All log messages before absl::InitializeLog()", CUDA probes on a machine
without a GPU) that ``TF_CPP_MIN_LOG_LEVEL`` does not silence. The modules that need
Keras call :func:`load_tensorflow` before importing it, so neither the CLI nor a
notebook shows them; Python errors still surface as exceptions.
"""

from __future__ import annotations

import functools
import os
import sys


def load_tensorflow() -> None:
    """Import TensorFlow and probe its devices with file descriptor 2 sent to /dev/null."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@functools.cache
def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU (where Keras's LSTM takes the cuDNN path)."""
    load_tensorflow()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
