"""Training into a run directory, resuming it, and generating from it."""

import csv
import json
import math

import keras
import numpy as np
import pytest

from toolkit.cli import main
from toolkit.config.schema import build_components
from toolkit.errors import ToolkitError
from toolkit.generate.sampling import Generator
from toolkit.model.assembly import inference_twin
from toolkit.plugins import registry
from toolkit.runs.rundir import Run
from toolkit.model.state import reset_states
from toolkit.training.phases import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run shared by the read-only tests of this module."""
    from tests.conftest import write_tiny_config

    folder = tmp_path_factory.mktemp("run")
    config = write_tiny_config(folder, "epochs = 2\nlearning_rate = 0.01")
    return train(str(config), folder / "run", verbose=0)


def test_a_run_holds_config_vocab_model_history_and_metrics(trained_run):
    for name in ("config.toml", "vocab.json", "model.keras", "checkpoint.keras",
                 "best.keras", "history.csv", "metrics.json", "progress.json"):
        assert (trained_run.path / name).is_file(), name
    metrics = trained_run.metrics()
    nats = metrics["validation"]["nats_per_token"]
    assert math.isclose(metrics["validation"]["bits_per_token"], nats / math.log(2),
                        rel_tol=1e-4)
    assert 0 < nats < math.log(metrics["data"]["vocab_size"]) + 0.5
    vocab = json.loads((trained_run.path / "vocab.json").read_text())
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"] and "T" in vocab["tokens"]
    with (trained_run.path / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"loss", "val_perplexity", "elapsed_minutes", "tokens_per_second"} <= set(rows[0])


def test_the_twin_gives_the_training_models_distribution(trained_run):
    run = Run(trained_run.path)
    components = build_components(run.config, registry())
    trained = run.load_model()
    vocab = run.vocab
    context = vocab.encode(list("To be, or not to be"))
    reset_states(trained)  # the training model has batch size 4: same context in every row
    tokens = np.tile(context, (4, 1))
    expected = np.asarray(trained({"tokens": tokens, "starts": np.zeros(len(tokens))}))[:, -1]
    for samples in (1, 3):
        twin = inference_twin(trained, components, len(vocab), samples)
        generator = Generator(None, vocab, twin, samples)
        generator.compile()
        got = generator.prime(context)
        np.testing.assert_allclose(got, expected[:samples], atol=1e-5)
        # feeding the context one token at a time gives the same result
        generator.prime(context[:5])
        for token in context[5:]:
            step = generator.advance([token])
        np.testing.assert_allclose(step, expected[:samples], atol=1e-5)


def test_save_load_generate_round_trip(trained_run):
    generator = Generator.from_run(trained_run.path, samples=2)
    first = generator.generate("To be", length=40, temperature=0.7, seed=5)
    again = Generator.from_run(trained_run.path, samples=2).generate(
        "To be", length=40, temperature=0.7, seed=5)
    assert first == again, "same run, same seed: same text"
    assert len(first) == 2 and all(len(text) == 40 for text in first)
    known = set(Run(trained_run.path).vocab.tokens[2:])
    assert all(set(text) <= known for text in first)
    top1 = generator.generate("To be", length=20, top_k=1, seed=1)
    assert top1[0] == top1[1], "top-k 1 is greedy: both samples agree"
    nucleus = generator.generate("To be", length=20, top_p=0.5, top_k=5, seed=1)
    assert all(len(t) == 20 for t in nucleus)


def test_the_sampling_loop_is_compiled_once_and_reused(trained_run):
    generator = Generator.from_run(trained_run.path)
    first = generator.generate("To be", length=300, temperature=0.7, seed=3)
    generator.generate("Or not", length=20, temperature=1.3, top_k=3, top_p=0.9)
    again = generator.generate("To be", length=300, temperature=0.7, seed=3)
    fresh = Generator.from_run(trained_run.path).generate("To be", length=300,
                                                         temperature=0.7, seed=3)
    assert first == again == fresh, "the reused loop draws what a fresh one draws"
    assert len(first[0]) == 300
    assert generator._sample_chunk.experimental_get_tracing_count() == 1


def test_sampled_tokens_follow_the_models_distribution(trained_run):
    """Every sample row starts from the same state, so the first tokens drawn across 4,000
    rows are a sample of the model's next-token distribution (at temperature 1), and with
    ``top_k`` only the k most likely tokens appear, in their renormalised proportions."""
    generator = Generator.from_run(trained_run.path, samples=4000)
    ids = generator.encode_prime("To be, or not")
    generator.prime(ids[:-1])
    expected = generator.advance(ids[-1:])[0]  # the distribution after the whole prime
    for top_k in (0, 3):
        generator.prime(ids[:-1])
        drawn = generator.sample(int(ids[-1]), 1, top_k=top_k, seed=11)[:, 0]
        frequencies = np.bincount(drawn, minlength=len(expected)) / len(drawn)
        target = expected.copy()
        target[[0, 1]] = 0  # padding and "unknown" are never drawn
        if top_k:
            target[np.argsort(target)[:-top_k]] = 0
        target /= target.sum()
        assert np.abs(frequencies - target).sum() / 2 < 0.04, (top_k, frequencies, target)
        assert set(np.flatnonzero(frequencies)) <= set(np.flatnonzero(target))


def test_temperature_0_is_greedy(trained_run, capsys):
    generator = Generator.from_run(trained_run, samples=2)
    texts = {text for seed in (1, 2, 3)
             for text in generator.generate("To be", 30, temperature=0.0, seed=seed)}
    assert len(texts) == 1  # the same text in every row, whatever the seed
    # the likeliest token at every step, fed back in
    ids = list(generator.encode_prime("To be"))
    reset_states(generator.twin)
    probabilities = generator.advance(np.array(ids))[0].copy()
    for _ in range(30):
        probabilities[:2] = 0  # never padding or "unknown"
        ids.append(int(probabilities.argmax()))
        probabilities = generator.advance(np.array(ids[-1:]))[0].copy()
    expected = generator.preprocessor.detokenize(generator.vocab.decode(ids[-30:]))
    assert texts == {expected}
    assert main(["generate", str(trained_run.path), "--prime", "To be", "--length", "30",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out.strip() == "To be" + expected.rstrip()
    assert main(["generate", str(trained_run.path), "--temperature", "-0.5"]) == 2
    assert "--temperature: expected a non-negative number" in capsys.readouterr().err


def test_the_epoch_line_names_its_figures(tmp_path, capsys):
    from tests.conftest import write_tiny_config

    config = write_tiny_config(tmp_path, "epochs = 1\nsample_length = 0")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if "/step" in l][-1]
    assert "nats/token:" in line and "val_nats/token:" in line and "tokens/s:" in line
    assert " loss:" not in line and "val_loss:" not in line
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "nats", "val_nats", "tokens_per_second"} <= set(history)  # logs keep names


def test_unknown_characters_in_the_prime_are_refused(trained_run, capsys):
    generator = Generator.from_run(trained_run.path)
    with pytest.raises(ToolkitError, match=r"never seen in training: 'Ω', '%'"):
        generator.generate("Ω to be %", length=5)
    assert main(["generate", str(trained_run.path), "--prime", "Ω", "--length", "5"]) == 2
    assert "never seen in training" in capsys.readouterr().err
    assert main(["generate", str(trained_run.path), "--prime", "To", "--top-p", "1.5"]) == 2
    assert "--top-p: expected a number in (0, 1]" in capsys.readouterr().err


def test_cli_generate_prints_the_samples(trained_run, capsys):
    assert main(["generate", str(trained_run.path), "--prime", "To be", "--length", "30",
                 "--samples", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- sample") == 2


def test_resume_continues_from_the_last_checkpoint(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    train(str(tiny_config), run_dir, verbose=0)
    iterations = int(keras.saving.load_model(run_dir / "checkpoint.keras").optimizer.iterations)
    assert iterations > 0
    with pytest.raises(ToolkitError, match="already holds a run; pass --resume"):
        train(str(tiny_config), run_dir, verbose=0)
    with pytest.raises(ToolkitError, match="core.units differ"):
        train(str(tiny_config), run_dir, ["core.units=32"], resume=True, verbose=0)
    run = train(str(tiny_config), run_dir, ["train.epochs=2"], resume=True, verbose=0)
    assert run.progress()["epochs_done"] == 2
    resumed = keras.saving.load_model(run_dir / "checkpoint.keras")
    assert int(resumed.optimizer.iterations) == 2 * iterations, "optimizer state carried on"
    with (run_dir / "history.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]
    assert run.config["train"]["epochs"] == 2


def test_missing_run_and_missing_corpus_are_clear(tmp_path, tiny_config, capsys):
    assert main(["generate", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["train", str(tiny_config), "--run-dir", str(tmp_path / "r"),
                 "--set", f"corpus.path={tmp_path / 'absent.txt'}"]) == 2
    assert "corpus file not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists(), "nothing is written before the input is checked"


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tiny_config, tmp_path):
    straight = train(str(tiny_config), tmp_path / "straight", ["train.epochs=2",
                                                               "train.keep=last"], verbose=0)
    train(str(tiny_config), tmp_path / "resumed", ["train.keep=last"], verbose=0)
    resumed = train(None, tmp_path / "resumed", ["train.epochs=2"], resume=True, verbose=0)
    a = keras.saving.load_model(straight.path / "model.keras").get_weights()
    b = keras.saving.load_model(resumed.path / "model.keras").get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_generate_builds_the_registry_once_and_reads_the_stored_config_as_written(
        trained_run, monkeypatch, capsys):
    """One process, one registry; a trained run is not re-validated against today's plugins."""
    from toolkit.config import schema as config_module
    from toolkit import plugins

    plugins.registry()  # built (or already built) before the command
    calls = []
    real_build = plugins.build_registry
    monkeypatch.setattr(plugins, "build_registry",
                        lambda *a, **k: calls.append(1) or real_build(*a, **k))

    def refuse(*args, **kwargs):
        raise AssertionError("a stored config must not be resolved again")

    monkeypatch.setattr(config_module, "resolve", refuse)
    loads = []
    real_load = Run.load_model
    monkeypatch.setattr(Run, "load_model", lambda self: loads.append(1) or real_load(self))
    assert main(["generate", str(trained_run.path), "--length", "5", "--seed", "1"]) == 0
    assert calls == [] and loads == [1]
    assert len(capsys.readouterr().out) == len("\n") + 5 + 1  # the prime, 5 tokens, newline


def test_a_run_opens_once_with_everything_it_needs(trained_run):
    run = Run.open(trained_run.path)
    assert run.model is run.model and run.components is run.components
    assert run.head.generates and not run.head.attributes and run.labels == []
    assert list(run.preprocessor("To")) == ["T", "o"] and len(run.vocab) > 10
    with pytest.raises(ToolkitError, match="is not a run directory"):
        Run.open(trained_run.path.parent)
