"""Several devices and machines with tf.distribute: every replica continues its own rows and
keeps its own state, and a mirrored run trains what one device trains. The CPU is split
into two logical devices in a child process (TOOLKIT_CPU_DEVICES=2)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TOOLKIT_CPU_DEVICES": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}


def child(*args, env=ENV, timeout=600):
    result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                            timeout=timeout, cwd=HERE.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def check(name):
    return json.loads(child(str(HERE / "distributed_checks.py"), name).strip().splitlines()[-1])


def test_each_replica_continues_its_own_rows_with_its_own_resets():
    seen = check("rows")
    replicas, steps = seen["replicas"], seen["steps"]
    assert replicas == 2 and len(steps) == seen["batches"]
    for k, step in enumerate(steps):
        # replica r holds rows r * 2 and r * 2 + 1 of every global batch
        assert [row for part in step["tokens"] for row in part] == step["global"]
        if k == 0:
            continue
        for replica in range(replicas):
            for row in range(2):
                before, now = steps[k - 1]["tokens"][replica][row], step["tokens"][replica][row]
                reset = step["resets"][replica][row]
                if not any(now):
                    continue
                # position-coded ids: the row goes on where it stopped, or a document starts
                first = now[0]
                assert first == before[-1] + 1 or (first % 10000 == 0 and reset[0] == 1)


def test_a_mirrored_run_trains_what_one_device_trains():
    figures = check("training")
    single, mirrored = figures["single"], figures["mirrored"]
    np.testing.assert_allclose(mirrored["nats"], single["nats"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["val_nats"], single["val_nats"], rtol=1e-5)
    for ours, theirs in zip(mirrored["weights"], single["weights"]):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # the state: one copy per replica, each replica's rows as on one device, never averaged
    assert figures["replica_copies"] == [2, 2]
    for ours, theirs in zip(mirrored["states"], single["states"]):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for flipped, saved in zip(figures["flipped"], figures["saved"]):
        np.testing.assert_allclose(flipped, saved[::-1])
    assert figures["zero_after_reset"]


CLI_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from toolkit.cli import main
from tests.conftest import write_tiny_config
folder = Path({folder!r})
config = write_tiny_config(folder, "epochs = 1\\nxla = \\"off\\"\\ndistribute = \\"mirrored\\"")
codes = [main(["train", str(config), "--run-dir", str(folder / "run")]),
         main(["train", "--resume", "--run-dir", str(folder / "run"), "--set", "train.epochs=2"]),
         main(["evaluate", str(folder / "run")]),
         main(["generate", str(folder / "run"), "--length", "20", "--seed", "1"])]
# attribution (stateless passages): Keras splits each batch between the replicas
from tests.test_attribution import CHAINS, chain_text, write_config
corpus = folder / "authors.jsonl"
corpus.write_text("".join(json.dumps({{"text": chain_text(a, 1500, s), "label": a,
                                       "name": f"{{a}}-{{s}}"}}) + "\\n"
                          for a in CHAINS for s in (1, 2)))
classifier = Path(write_config(folder / "cls.toml", corpus, "classifier", epochs=1))
classifier.write_text(classifier.read_text().replace(
    "[train]", "[train]\\ndistribute = \\"mirrored\\"\\nxla = \\"off\\""))
codes += [main(["train", str(classifier), "--run-dir", str(folder / "cls")]),
          main(["evaluate", str(folder / "cls"), "--no-baseline"])]
print(json.dumps(codes))
"""


def test_mirrored_runs_resume_evaluate_generate_and_attribute_like_any_run(tmp_path):
    script = CLI_SCRIPT.format(root=str(HERE.parent), folder=str(tmp_path))
    output = child("-c", script)
    assert json.loads(output.strip().splitlines()[-1]) == [0] * 6
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["epochs_done"] == 2
    assert "validation" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_a_batch_that_replicas_cannot_share_is_refused_before_any_work(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(HERE.parent)!r})
from pathlib import Path
from toolkit.cli import main
from tests.conftest import write_tiny_config
folder = Path({str(tmp_path)!r})
config = write_tiny_config(folder, "distribute = \\"mirrored\\"")
config.write_text(config.read_text().replace("batch_size = 4", "batch_size = 3"))
print(main(["train", str(config), "--run-dir", str(folder / "run")]))
"""
    result = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "2"
    assert "sequences.batch_size" in result.stderr and "multiple of 2" in result.stderr
    assert not (tmp_path / "run").exists()


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_worker_processes_train_what_one_process_trains(tmp_path):
    from tests.conftest import write_tiny_config

    config = write_tiny_config(tmp_path, "epochs = 2\nxla = \"off\"\nlearning_rate = 0.01")
    workers = [f"localhost:{free_port()}" for _ in range(2)]
    # the workers' collective ops get TensorFlow's own thread pools (see tests/conftest.py)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TOOLKIT_CPU_DEVICES", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "toolkit.cli", "train", str(config), "--run-dir",
             str(tmp_path / f"worker{index}"), "--set", "train.distribute=multi-worker"],
            env={**env, "TF_CONFIG": json.dumps(tf_config)}, cwd=HERE.parent,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    child("-m", "toolkit.cli", "train", str(config), "--run-dir", str(tmp_path / "single"),
          env=env)

    def history(run):
        import csv

        with (tmp_path / run / "history.csv").open() as f:
            return [(float(r["nats"]), float(r["val_nats"])) for r in csv.DictReader(f)]

    np.testing.assert_allclose(history("worker0"), history("single"), rtol=1e-3)
    np.testing.assert_allclose(history("worker1"), history("worker0"), rtol=1e-6)


def test_multi_worker_without_tf_config_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                   capsys):
    from tests.conftest import write_tiny_config
    from toolkit.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = write_tiny_config(tmp_path, "distribute = \"multi-worker\"")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "train.distribute" in error and "TF_CONFIG" in error
    assert not (tmp_path / "run").exists()
