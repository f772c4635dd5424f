"""`toolkit export`: a run as a SavedModel (and a TensorFlow Lite step) that runs with
TensorFlow alone and computes what the run's own inference twin computes."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.serving_runs import author_text, train_author_lms, train_generator
from toolkit.cli import main

# Run in a fresh interpreter where `import toolkit` fails: the export must need only
# TensorFlow (and NumPy). Prints the log-probabilities of the primed sequence.
PLAIN_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoToolkit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "toolkit" or name.startswith("toolkit."):
                raise ImportError(f"{name} is blocked: the export must run without it")

    sys.meta_path.insert(0, NoToolkit())
    try:
        import toolkit
    except ImportError:
        pass
    else:
        raise SystemExit("toolkit is importable; the check means nothing")

    import numpy as np
    import tensorflow as tf

    export, ids, split = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    model = tf.saved_model.load(export)
    step = model.signatures["step"]
    states = model.signatures["initial_state"](batch_size=tf.constant(1))
    logits = []
    for part in (ids[:split], ids[split:]):  # the state carried from one call to the next
        out = step(tokens=tf.constant([part], tf.int32), **states)
        logits.append(out.pop("logits").numpy()[0])
        states = out
    result = {"logits": np.concatenate(logits).tolist()}
    if "score" in model.signatures:
        passages = tf.constant(json.loads(sys.argv[4]), tf.int32)
        result["scores"] = model.signatures["score"](passages=passages)["scores"].numpy().tolist()
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    return train_generator(folder), train_author_lms(folder)


def twin_log_probs(run_dir, ids, author=None):
    """The run's own inference twin (batch 1), primed with ``ids``: log-probabilities."""
    from toolkit.generate.sampling import Generator
    from toolkit.model.state import reset_states

    generator = Generator.from_run(str(run_dir), 1, author)
    reset_states(generator.twin)
    return np.log(np.asarray(generator.twin(ids[None, :], training=False))[0])


def primed_ids(run_dir, length=200):
    from toolkit.runs.rundir import Run

    run = Run.open(run_dir)
    text = (author_text("ann", 80, 7) + " " + author_text("cy", 80, 7)
            if run.labels else "To be, or not to be, that is the question:\n" * 8)
    ids = run.vocab.encode(run.preprocessor(text))[:length]
    assert len(ids) == length and (ids > 1).all()
    return ids


def run_without_toolkit(export, ids, passages=None):
    out = subprocess.run([sys.executable, "-c", PLAIN_TENSORFLOW, str(export),
                          json.dumps(ids.tolist()), "120",
                          json.dumps(passages.tolist() if passages is not None else [])],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_export_runs_with_tensorflow_alone_and_equals_the_twin(runs, tmp_path):
    generator_run, _ = runs
    export = tmp_path / "hamlet-export"
    assert main(["export", str(generator_run), "--output", str(export)]) == 0
    ids = primed_ids(generator_run)
    exported = np.array(run_without_toolkit(export, ids)["logits"])
    expected = twin_log_probs(generator_run, ids)
    assert exported.shape == expected.shape == (200, len(json.loads(
        (export / "vocab.json").read_text())["tokens"]))
    np.testing.assert_allclose(exported, expected, atol=1e-5, rtol=0)
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["signatures"] == ["initial_state", "step"]
    assert [s["size"] for s in manifest["states"]] == [16, 16]
    card = (export / "MODEL_CARD.md").read_text()
    for needed in ("`step`", "`initial_state`", "How to sample", "nats_per_token",
                   '"units": 16'):
        assert needed in card, needed
    assert (export / "config.toml").is_file() and (export / "metrics.json").is_file()


def test_the_tflite_step_equals_the_twin(runs, tmp_path):
    import tensorflow as tf

    generator_run, _ = runs
    export = tmp_path / "hamlet-tflite"
    assert main(["export", str(generator_run), "--output", str(export),
                 "--format", "tflite"]) == 0
    manifest = json.loads((export / "export.json").read_text())
    runner = tf.lite.Interpreter(model_path=str(export / "model.tflite")) \
        .get_signature_runner("step")
    states = {s["name"]: np.zeros((1, s["size"]), np.float32) for s in manifest["states"]}
    ids = primed_ids(generator_run, 60)
    logits = []
    for token in ids:
        out = runner(tokens=np.array([[token]], np.int32), **states)
        logits.append(out.pop("logits")[0, 0])
        states = out
    np.testing.assert_allclose(np.array(logits), twin_log_probs(generator_run, ids),
                               atol=1e-4, rtol=0)


def test_one_authors_generator_and_the_score_signature(runs, tmp_path):
    from toolkit.attribution.attribute import Attributor
    from toolkit.runs.rundir import Run

    _, authors_run = runs
    export = tmp_path / "bob"
    assert main(["export", str(authors_run), "--output", str(export), "--author", "bob"]) == 0
    ids = primed_ids(authors_run)
    run = Run.open(authors_run)
    attributor = Attributor(run)
    passages = attributor.cut(ids)
    result = run_without_toolkit(export, ids, passages)
    np.testing.assert_allclose(np.array(result["logits"]),
                               twin_log_probs(authors_run, ids, "bob"), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array(result["scores"]), attributor.passage_scores(passages),
                               atol=1e-4, rtol=1e-5)
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["author"] == "bob" and manifest["authors"] == ["ann", "bob", "cy"]
    assert manifest["signatures"] == ["initial_state", "score", "step"]
    # what a client needs to calibrate travels with it
    assert json.loads((export / "calibration.json").read_text())["temperature"] > 0
    assert json.loads((export / "labels.json").read_text())["labels"] == ["ann", "bob", "cy"]
    assert "How to attribute" in (export / "MODEL_CARD.md").read_text()


def test_export_refusals_name_the_flag(runs, tmp_path, capsys):
    generator_run, authors_run = runs
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    cases = [
        (["export", str(generator_run), "--output", str(taken)], "--output"),
        (["export", str(generator_run), "--output", str(tmp_path / "a"), "--author", "bob"],
         "--author"),
        (["export", str(authors_run), "--output", str(tmp_path / "b"), "--author", "dan"],
         "--author"),
        (["export", str(authors_run), "--output", str(tmp_path / "c"), "--format", "tflite"],
         "--format tflite"),
        (["export", str(tmp_path / "nowhere"), "--output", str(tmp_path / "d")],
         "run directory not found"),
    ]
    for argv, named in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing half written
