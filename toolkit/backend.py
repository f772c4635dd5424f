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
        split_cpu(int(os.environ.get("TOOLKIT_CPU_DEVICES") or 0))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
        split_cpu(int(os.environ.get("TOOLKIT_CPU_DEVICES") or 0))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def split_cpu(devices: int) -> None:
    """Show the CPU as ``devices`` logical devices (``TOOLKIT_CPU_DEVICES``), so that
    ``train.distribute = "mirrored"`` can be tried, and tested, without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if devices <= 1 or len(tf.config.get_logical_device_configuration(cpu) or []) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])
    except RuntimeError as err:  # TensorFlow already placed something on a device
        raise RuntimeError(f"TOOLKIT_CPU_DEVICES={devices} must take effect before "
                           f"TensorFlow runs anything: {err}") from None


@functools.cache
def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU (where Keras's LSTM takes the cuDNN path)."""
    load_tensorflow()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def use_keras_backend(name: str, config_file: str | None = None) -> None:
    """Make ``name`` (``train.backend``) the Keras backend of this process: set
    ``KERAS_BACKEND`` before Keras is imported; refuse if Keras already runs on another
    one (a process has one backend for good)."""
    from toolkit.errors import ConfigError

    if "keras" in sys.modules:
        import keras

        running = keras.backend.backend()
        if running != name:
            raise ConfigError("train.backend", (
                f"{name!r} was asked for, but Keras already runs on {running!r} in this "
                f"process (a process keeps its first backend); run the command in a new "
                f"process, e.g. `KERAS_BACKEND={name} toolkit train ...`, or set "
                f"train.backend = {running!r}"), config_file)
        return
    os.environ["KERAS_BACKEND"] = name
