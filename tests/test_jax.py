"""``train.backend = "jax"``: the toolkit on Keras's JAX backend, each step in its own process
(a process keeps the Keras backend it first loads; this one runs TensorFlow)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import write_tiny_config
from toolkit.errors import ConfigError

pytest.importorskip("jax")


def toolkit(*args, backend=None, timeout=300):
    """``python -m toolkit ARGS`` in a new process (``KERAS_BACKEND=backend`` if given)."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def windows_config(folder, train):
    """The tiny config with stateless windows (what JAX trains correctly, see below)."""
    config = write_tiny_config(folder, train)
    config.write_text(config.read_text().replace(
        'use = "stream"\nbatch_size = 4\nlength = 16', 'use = "windows"\nbatch_size = 8\nlength = 16'))
    assert 'use = "windows"' in config.read_text()
    return config


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """A tiny generator trained on JAX for one epoch on stateless windows."""
    folder = tmp_path_factory.mktemp("jax")
    config = windows_config(folder, 'epochs = 1\nbackend = "jax"\nsample_length = 20')
    toolkit("train", str(config), "--run-dir", str(folder / "run"))
    return folder / "run"


@pytest.mark.slow
def test_a_run_trained_on_jax_generates_and_evaluates_alike_on_both_backends(jax_run):
    from toolkit.runs.rundir import Run

    config = (jax_run / "config.toml").read_text()
    assert 'backend = "jax"' in config
    metrics = json.loads((jax_run / "metrics.json").read_text())
    assert np.isfinite(metrics["validation"]["nats_per_token"])
    texts = [toolkit("generate", str(jax_run), "--prime", "the ", "--length", "30",
                     "--temperature", "0", backend=backend).stdout
             for backend in ("tensorflow", "jax")]
    assert len(texts[0]) >= 30 and texts[0] == texts[1], texts  # greedy: the same text
    assert Run(jax_run).model.get_layer("core_lstm_0").stateful is False
    reports = [toolkit("evaluate", str(jax_run), "--no-baseline", backend=backend).stdout
               for backend in ("tensorflow", "jax")]
    assert "nats/token" in reports[0] and reports[0] == reports[1]


@pytest.mark.slow
def test_a_jax_run_resumes_from_its_checkpoint_on_jax(jax_run):
    toolkit("train", "--run-dir", str(jax_run), "--resume", "--set", "train.epochs=2")
    assert json.loads((jax_run / "progress.json").read_text())["epochs_done"] == 2


@pytest.mark.slow
def test_jax_generation_carries_the_twin_state_from_call_to_call(jax_run):
    code = ("import numpy as np\n"
            "from toolkit.generate.sampling import Generator\n"
            f"g = Generator.from_run({str(jax_run)!r}, samples=2)\n"
            "ids = g.encode_prime('the king and the queen ')\n"
            "whole = g.prime(ids)\n"
            "g.prime(ids[:5])\n"
            "parts = g.advance(ids[5:])\n"
            "fresh = g.prime(ids[5:])\n"
            "assert np.allclose(whole, parts, atol=1e-5), 'state not carried'\n"
            "assert not np.allclose(whole, fresh, atol=1e-5)\n"
            "import keras; print(keras.backend.backend())\n")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "jax", done.stderr[-2000:]


def test_jax_refuses_stateful_streams_before_any_work(tmp_path, capsys):
    from toolkit.cli import main

    config = write_tiny_config(tmp_path, 'epochs = 1\nbackend = "jax"')
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "carry a stateful RNN's state" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_jax_is_refused_where_keras_already_runs_on_tensorflow(tmp_path):
    import toolkit as api

    config = windows_config(tmp_path, 'epochs = 1\nbackend = "jax"')
    with pytest.raises(ConfigError, match="train.backend"):
        api.train(str(config), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_jax_refuses_tf_distribute_before_any_work(tmp_path, capsys):
    from toolkit.cli import main

    config = windows_config(tmp_path, 'epochs = 1\nbackend = "jax"\ndistribute = "mirrored"')
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "train.distribute" in capsys.readouterr().err


def test_jax_refuses_pretraining_before_any_work(tmp_path, capsys):
    from tests.test_attribution import write_config
    from toolkit.cli import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": "abc " * 200, "label": a, "name": f"{a}{i}"})
                                for a in ("x", "y") for i in range(3)))
    config = write_config(tmp_path / "c.toml", corpus, "classifier", epochs=1)
    text = open(config).read().replace("[train]", "[pretrain]\nepochs = 1\n\n[train]\nbackend = \"jax\"")
    open(config, "w").write(text)
    assert main(["train", config, "--run-dir", str(tmp_path / "run")]) == 2
    assert "train.backend" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
