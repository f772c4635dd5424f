"""Config validation: every error names the key path, the value received and what would work."""

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.config import schema as config
from toolkit.cli import main
from toolkit.errors import ToolkitError
from toolkit.plugins import registry

BASE = {"corpus": {"use": "inline", "text": "abcabc"}}


def resolve(raw):
    return config.resolve(raw, registry())


def build(raw):
    resolved = resolve(raw)
    return config.build_components(resolved, registry())


def with_(**sections):
    return {**BASE, **sections}


def test_defaults_are_filled_in():
    resolved = resolve(BASE)
    assert resolved["core"] == {"use": "lstm", "units": 256, "layers": 1, "dropout": 0.0,
                                "recurrent_dropout": 0.0, "dropout_mask": "sequence"}
    assert resolved["init"] == {"copy": ["encoder", "core"], "freeze": False,
                                "unfreeze_after": 0, "lr_decay": 1.0}
    assert resolved["sequences"]["use"] == "stream"
    assert list(resolved["preprocess"]) == [{"use": "chars"}]
    assert resolved["train"]["epochs"] == 10


def test_a_resolved_config_is_frozen_typed_and_knows_where_each_value_came_from(tmp_path):
    from dataclasses import FrozenInstanceError

    path = tmp_path / "c.toml"
    path.write_text('[corpus]\nuse = "inline"\ntext = "abc"\n[core]\nunits = 8\n')
    resolved = config.load(path, registry(), ["train.epochs=3", "preprocess.0.use=chars"])
    assert resolved.core.units == 8 and resolved.train.epochs == 3
    assert resolved.preprocess[0].use == "chars" and resolved.config_file == str(path)
    assert str(resolved.origin("core.units")) == f"config file {path}"
    assert str(resolved.origin("train.epochs")) == "--set train.epochs=3"
    assert str(resolved.origin("preprocess.0.use")) == "--set preprocess.0.use=chars"
    assert resolved.origin("train.learning_rate").kind == "default"
    with pytest.raises(FrozenInstanceError):
        resolved.train.epochs = 4
    with pytest.raises(TypeError):
        resolved["train"]["epochs"] = 4
    with pytest.raises(AttributeError, match=r"\[core\] has no key 'unit'"):
        resolved.core.unit
    edited = resolved.to_dict()  # a changed config is a new one
    edited["train"]["epochs"] = 5
    again = config.resolve(edited, registry())
    assert again.train.epochs == 5 and resolved.train.epochs == 3
    written = tmp_path / "resolved.toml"  # what a run stores, read back the same
    written.write_text(config.dumps(resolved))
    assert config.load(written, registry()).to_dict() == resolved.to_dict()


@pytest.mark.parametrize("raw,message", [
    (with_(core={"use": "lstm", "units": "big"}),
     'core.units: expected a positive integer, received "big"'),
    (with_(core={"use": "lstm", "units": -3}),
     "core.units: expected a positive integer, received -3"),
    (with_(core={"use": "lstm", "unit": 3}), "core.unit: unknown key. Did you mean 'units'? Known keys here: units"),
    (with_(core={"use": "gru"}), "core.use: unknown core 'gru'. Available names: 'lstm'"),
    (with_(train={"learning_rate": 0}), "train.learning_rate: expected a positive number"),
    (with_(train={"optimizer": "adamax"}), 'train.optimizer: expected one of "adam"'),
    (with_(sequences={"use": "stream", "offset": "sometimes"}),
     'sequences.offset: expected one of "random", "none", received "sometimes"'),
    (with_(model={"units": 3}), "model: unknown section. Known sections: corpus"),
    ({}, "corpus: missing section"),
    (with_(preprocess=[{"use": "chars"}, {"use": "shout"}]),
     "preprocess.1.use: unknown preprocessor 'shout'. Available names: 'chars'"),
    (with_(preprocess={"use": "chars"}), "preprocess: expected a non-empty list"),
    (with_(encoder="embedding"), 'encoder: expected a table, received "embedding"'),
    (with_(corpus={"use": "text"}), "corpus.path: missing; expected a string"),
])
def test_invalid_values_name_the_key(raw, message):
    with pytest.raises(ToolkitError) as err:
        resolve(raw)
    assert message in str(err.value)


def test_stages_must_fit_one_after_the_other():
    with pytest.raises(ToolkitError, match=r"preprocess.1: stage 'lowercase' works on text, "
                                           r"but it receives tokens"):
        build(with_(preprocess=[{"use": "chars"}, {"use": "lowercase"}]))
    with pytest.raises(ToolkitError, match="never splits text into tokens"):
        build(with_(preprocess=[{"use": "lowercase"}]))


def test_core_statefulness_must_match_the_sequence_builder():
    with pytest.raises(ToolkitError, match="core.stateful: sequences.use = \"windows\" needs a "
                                           "stateless core"):
        build(with_(sequences={"use": "windows"}, core={"use": "lstm", "stateful": True}))


def test_set_overrides_any_key_with_toml_values():
    raw = config.apply_overrides(BASE, ["core.units=32", "train.learning_rate=0.5",
                                        "corpus.text=hello world", "preprocess.0.use=chars",
                                        "sequences.offset=\"none\""])
    resolved = resolve(raw)
    assert resolved["core"]["units"] == 32
    assert resolved["train"]["learning_rate"] == 0.5
    assert resolved["corpus"]["text"] == "hello world"
    assert resolved["sequences"]["offset"] == "none"
    with pytest.raises(ToolkitError, match="--set units: expected SECTION.KEY=VALUE"):
        config.apply_overrides(BASE, ["units"])
    with pytest.raises(ToolkitError, match="preprocess.3: no item 3"):
        config.apply_overrides(BASE, ["preprocess.3.use=chars"])


def test_cli_config_errors_exit_2_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[corpus]\nuse = "inline"\ntext = "abc"\n[core]\nunits = "big"\n')
    assert main(["config", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert f'{path}: core.units: expected a positive integer, received "big"' in err
    assert "Traceback" not in err
    assert main(["config", "show", str(path), "--set", "core.units=8"]) == 0
    out = capsys.readouterr().out
    assert "units = 8" in out and "learning_rate = 0.002" in out
    assert main(["config", "show", str(tmp_path / "missing.toml")]) == 2
    path.write_text("[corpus\n")
    assert main(["config", "show", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_console_script_exit_status(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[corpus]\nuse = "nowhere"\n')
    done = subprocess.run([sys.executable, "-m", "toolkit.cli", "config", "show", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "corpus.use: unknown corpus 'nowhere'. Available names:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    resolved = config.load(path, registry())
    components = config.build_components(resolved, registry())
    assert components.corpus is not None and components.stages


def test_an_unknown_name_given_with_set_blames_the_flag_and_suggests(tmp_path, capsys):
    path = tmp_path / "ok.toml"
    path.write_text('[corpus]\nuse = "inline"\ntext = "abc"\n')
    assert main(["config", "show", str(path), "--set", "core.use=gru"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toolkit: error: --set core.use=gru: core.use: unknown core 'gru'")
    assert str(path) not in err
    assert main(["config", "show", str(path), "--set", "core.use=lstn"]) == 2
    assert "Did you mean 'lstm'?" in capsys.readouterr().err
    assert main(["config", "show", str(path), "--set", "core.unit=3"]) == 2
    assert "core.unit: unknown key. Did you mean 'units'?" in capsys.readouterr().err
    path.write_text('[corpus]\nuse = "txt"\npath = "x"\n[trian]\nepochs = 1\n')
    assert main(["config", "show", str(path)]) == 2
    assert "trian: unknown section. Did you mean 'train'?" in capsys.readouterr().err
    path.write_text('[corpus]\nuse = "txt"\npath = "x"\n')
    assert main(["config", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: corpus.use: unknown corpus 'txt'. Did you mean 'text'?" in err


def test_version_and_python_dash_m(capsys):
    import toolkit

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"toolkit {toolkit.__version__}"
    done = subprocess.run([sys.executable, "-m", "toolkit", "--version"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"toolkit {toolkit.__version__}"


def test_shipped_configs_are_listed_and_copied_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = sorted(p.stem for p in (Path(__file__).parents[1] / "configs").glob("*.toml"))
    assert main(["config", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[:len(shipped)]]
    assert listed == shipped
    assert main(["config", "copy", "tiny"]) == 0
    copied = tmp_path / "tiny.toml"
    assert copied.read_text() == (Path(__file__).parents[1] / "configs" / "tiny.toml").read_text()
    assert main(["config", "copy", "tiny.toml"]) == 2  # never overwritten silently
    assert "exists" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    assert main(["config", "copy", "alphabet", "mine"]) == 0
    assert (tmp_path / "mine" / "alphabet.toml").is_file()
    assert main(["config", "copy", "tiy"]) == 2
    assert "no shipped config named 'tiy'. Did you mean 'tiny'?" in capsys.readouterr().err
    assert main(["config", "show", "tiny.toml"]) == 0  # a copy is a working config


def test_the_licence_travels_with_both_packages():
    root = Path(__file__).parents[1]
    for folder in (root, root / "plugins" / "toolkit-nltk"):
        assert "Apache License" in (folder / "LICENSE").read_text()
        assert 'license = "Apache-2.0"' in (folder / "pyproject.toml").read_text()


@pytest.mark.slow
def test_a_built_wheel_carries_the_configs_and_the_licence(tmp_path):
    import zipfile

    root = Path(__file__).parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(root)], check=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.name for p in (root / "configs").glob("*.toml")}
    assert {n.rsplit("/", 1)[-1] for n in names if n.startswith("toolkit/configs/")} == shipped
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "toolkit/serving/page.html" in names  # the page of `toolkit serve`


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_builds_its_model_and_takes_a_training_step(path):
    import numpy as np

    from toolkit.model.assembly import build_model, compile_model

    resolved = config.load(path, registry())
    components = config.build_components(resolved, registry())
    builder, head = components.sequences, components.head
    vocab_size, labels = 40, ["austen", "blake", "chesterton"]
    # The config's own encoder, core, head and optimizer; a small batch keeps it quick.
    rows, length = min(builder.batch_size, 4), min(builder.length, 16)
    model = build_model(components, vocab_size, rows, builder.stateful, labels)
    compile_model(model, components, resolved["train"], steps=1, init=resolved["init"])
    rng = np.random.default_rng(0)
    inputs = {"tokens": rng.integers(2, vocab_size, (rows, length)).astype("int32")}
    names = {tensor.name.split(":")[0] for tensor in model.inputs}
    if "resets" in names:
        inputs["resets"] = np.zeros((rows, length), "float32")
    if "starts" in names:
        inputs["starts"] = np.ones(rows, "float32")
    if "author" in names:
        inputs["author"] = rng.integers(0, len(labels), rows).astype("int32")
    if head.target == "label":
        targets, weights = rng.integers(0, len(labels), rows), np.ones(rows, "float32")
    else:
        targets = rng.integers(2, vocab_size, (rows, length))
        weights = np.ones((rows, length), "float32")
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(inputs if len(names) > 1 else inputs["tokens"], targets,
                                sample_weight=weights, return_dict=True)
    assert np.isfinite(logs["loss"]), logs
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
