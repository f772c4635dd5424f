"""Train stateful LSTM text models with Keras: style generation and author attribution
on a shared stateful core.

The Python API (see docs/api.md)::

    import toolkit
    run = toolkit.train("configs/tiny.toml", run_dir="runs/tiny")
    print(toolkit.open_run("runs/tiny").generate(prime="ROMEO:", length=100)[0])

Importing the package is quiet and light: TensorFlow (Keras 3's backend here: stateful
layers, the compiled sampling loop and the inference twin rely on it) loads on the
first call that needs a model.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
__all__ = ["ToolkitError", "TrainedRun", "crossval", "open_run", "train"]

from toolkit.errors import ToolkitError  # noqa: E402


def __getattr__(name):
    # The API lives in toolkit.api, imported on first use so `import toolkit` stays light.
    if name in ("train", "open_run", "TrainedRun", "crossval"):
        from toolkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
