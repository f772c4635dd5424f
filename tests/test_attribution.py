"""Attribution: passages, masking, sample weights, splits, heads, [init], attribute, evaluate."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from toolkit.hookspecs import Document
from toolkit.config import schema as config_module
from toolkit.runs import rundir as runs_module
from toolkit.cli import main
from toolkit.errors import ConfigError, ToolkitError
from toolkit.model.assembly import build_model, layers_of
from toolkit.plugins import registry

# Two "authors" over the same four characters, told apart only by the order of
# letters: one writes a -> b -> c -> a, the other a -> c -> b -> a.
CHAINS = {"forward": {"a": "b", "b": "c", "c": "a"}, "backward": {"a": "c", "c": "b", "b": "a"}}


def chain_text(author: str, n: int, seed: int, chains: dict = CHAINS) -> str:
    rng = np.random.default_rng(seed)
    out, letter = [], "a"
    for _ in range(n):
        out.append(letter)
        if rng.random() < 0.15:
            letter = " " if letter != " " else "a"
        else:
            letter = chains[author].get(letter, "a")
    return "".join(out)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "authors.jsonl"
    lines = [json.dumps({"text": chain_text(author, 2500, seed), "label": author,
                         "name": f"{author}-{seed}"})
             for author in CHAINS for seed in (1, 2)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(path, corpus_file, head: str, sequences: str = "", core: str = "",
                 epochs: int = 4, init: str = "") -> str:
    path.write_text(f"""
[corpus]
use = "jsonl"
path = "{corpus_file}"
name_field = "name"

[[preprocess]]
use = "chars"

[encoder]
use = "embedding"
dim = 8

[sequences]
use = "passages"
length = 40
batch_size = 16
{sequences}

[core]
use = "lstm"
units = 16
{core}

[head]
use = "{head}"

[init]
{init}

[train]
epochs = {epochs}
learning_rate = 0.01
""")
    return str(path)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, corpus_file):
    from toolkit.training.phases import train

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for head in ("classifier", "author-lms"):
        config = write_config(root / f"{head}.toml", corpus_file, head)
        runs[head] = train(config, root / head, verbose=0).path
    return runs


def components_for(tmp_path, corpus_file, head, **kwargs):
    resolved = config_module.load(write_config(tmp_path / "c.toml", corpus_file, head, **kwargs),
                                  registry())
    return config_module.build_components(resolved, registry()), resolved


# --- masking and sample weights -------------------------------------------------------

@pytest.mark.parametrize("pooling", ["last", "mean", "max", "concat"])
def test_more_padding_changes_no_prediction(tmp_path, corpus_file, pooling):
    components, _ = components_for(tmp_path, corpus_file, "classifier")
    components.head.pooling = pooling
    model = build_model(components, 6, None, stateful=False, labels=["a", "b"])
    passages = np.array([[2, 3, 4, 5, 2, 3, 0, 0], [5, 4, 3, 0, 0, 0, 0, 0]], np.int32)
    padded_more = np.pad(passages, ((0, 0), (0, 12)))
    short = model.predict(passages, verbose=0)
    long = model.predict(padded_more, verbose=0)
    np.testing.assert_allclose(short, long, atol=1e-6)


@pytest.mark.parametrize("mode", ["last", "mean", "max", "concat"])
def test_masked_pooling_ignores_padded_steps(mode):
    from toolkit.model.layers import MaskedPooling

    steps = np.array([[[1.0, -2.0], [3.0, -1.0], [100.0, 100.0], [-100.0, -100.0]]], "float32")
    mask = np.array([[True, True, False, False]])
    pooled = np.asarray(MaskedPooling(mode)(steps, mask=mask))[0]
    expected = {"last": [3.0, -1.0], "mean": [2.0, -1.5], "max": [3.0, -1.0]}
    parts = ["last", "mean", "max"] if mode == "concat" else [mode]
    np.testing.assert_allclose(pooled, np.concatenate([expected[p] for p in parts]))


def test_the_token_loss_is_the_weighted_mean_over_real_tokens(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "author-lms")
    model = build_model(components, 6, None, stateful=False, labels=["a", "b"])
    model.compile(loss=components.head.loss())
    ids = np.array([[2, 3, 4, 5, 2, 3, 0, 0], [5, 4, 3, 0, 0, 0, 0, 0]], np.int32)
    authors = np.array([0, 1], np.int32)
    class_weight = np.array([0.5, 3.0], np.float32)

    def loss(ids):
        x, y = ids[:, :-1], ids[:, 1:]
        w = (y != 0) * class_weight[:, None]
        pred = model({"tokens": x, "author": authors})
        return float(model.compute_loss(x=x, y=y, y_pred=pred, sample_weight=w)), pred, y, w

    value, pred, y, w = loss(ids)
    picked = np.take_along_axis(np.asarray(pred), y[:, :, None], axis=-1)[:, :, 0]
    # Keras divides by the positions the output's mask keeps: the 6 + 3 real inputs.
    x = ids[:, :-1]
    by_hand = (w * -np.log(picked)).sum() / (x != 0).sum()
    assert value == pytest.approx(by_hand, rel=1e-5)
    assert loss(np.pad(ids, ((0, 0), (0, 9))))[0] == pytest.approx(value, rel=1e-6)


def test_a_zero_sample_weight_removes_the_passage_gradient(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "classifier")
    model = build_model(components, 6, None, stateful=False, labels=["a", "b"])
    model.compile(loss=components.head.loss())
    first = np.array([[2, 3, 4, 5, 2, 3]], np.int32)

    def gradients(second, weights):
        x = np.concatenate([first, second])
        with tf.GradientTape() as tape:
            pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=np.array([0, 1]), y_pred=pred,
                                      sample_weight=np.array(weights, np.float32))
        return [tf.convert_to_tensor(g).numpy()
                for g in tape.gradient(loss, model.trainable_variables)]

    zeroed_a = gradients(np.array([[5, 5, 4, 4, 3, 3]]), [1.0, 0.0])
    zeroed_b = gradients(np.array([[4, 2, 2, 2, 5, 0]]), [1.0, 0.0])
    for a, b in zip(zeroed_a, zeroed_b):
        np.testing.assert_allclose(a, b, atol=1e-7)
    counted_a = gradients(np.array([[5, 5, 4, 4, 3, 3]]), [1.0, 1.0])
    counted_b = gradients(np.array([[4, 2, 2, 2, 5, 0]]), [1.0, 1.0])
    assert any(not np.allclose(a, b) for a, b in zip(counted_a, counted_b))


def test_balanced_class_weights_make_each_author_weigh_the_same(tmp_path, corpus_file):
    from toolkit.splits import Split

    components, _ = components_for(tmp_path, corpus_file, "classifier")
    builder = components.sequences
    split = Split([np.ones(40, np.int32)] * 4, ["long", "long", "long", "short"], ["x"] * 4)
    passages = builder.data(split, ["long", "short"], training=True)
    weights = dict(zip(passages.labels.tolist(), passages.weights.tolist()))
    # n / (authors * passages of the author): 4 / (2 * 3) and 4 / (2 * 1)
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})
    assert passages.weights[passages.labels == 0].sum() == pytest.approx(
        passages.weights[passages.labels == 1].sum())
    assert builder.data(split, ["long", "short"]).weights.tolist() == [1.0] * 4


@pytest.mark.parametrize("head", ["classifier", "author-lms"])
def test_training_batches_carry_the_class_weights(tmp_path, corpus_file, head):
    from toolkit.splits import Split

    components, _ = components_for(tmp_path, corpus_file, head)
    builder = components.sequences
    lengths = [40, 40, 40, 25]
    split = Split([np.arange(2, 2 + n, dtype=np.int32) for n in lengths],
                  ["long", "long", "long", "short"], ["x"] * 4)
    data = builder.training(builder.data(split, ["long", "short"], training=True), seed=0)
    x, y, w = data[0]
    if head == "classifier":
        assert sorted(y.tolist()) == [0, 0, 0, 1]
        assert w.tolist() == pytest.approx([4 / 6 if label == 0 else 2.0 for label in y])
    else:
        authors = x["author"]
        for row, author in enumerate(authors):
            real = (y[row] != 0).sum()
            assert real == (24 if author == 1 else 39)
            assert w[row, :real].tolist() == pytest.approx([2.0 if author else 4 / 6] * real)
            assert not w[row, real:].any()  # padding weighs nothing


# --- splits ---------------------------------------------------------------------------

def documents():
    return [Document("", f"{label}-{i}", label) for label in ("x", "y") for i in range(3)]


def positions(plan, name, names):
    return {(names[s.document], t) for s in plan[name] for t in range(s.start, s.stop)}


@pytest.mark.parametrize("by", ["region", "passage", "document"])
def test_no_token_is_in_two_splits_and_the_split_is_reproducible(tmp_path, corpus_file, by):
    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences=f'split = {{ by = "{by}", gap = 5 }}')
    builder = components.sequences
    docs = documents()
    tokens = [["x"] * n for n in (1000, 700, 1300, 900, 1100, 800)]
    plan = builder.plan_split(docs, tokens, 0.1, seed=3)
    names = [d.name for d in docs]
    train, val, test = (positions(plan, n, names) for n in ("train", "validation", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert all(s.stop - s.start <= 40 for segments in plan.values() for s in segments)
    assert plan == builder.plan_split(docs, tokens, 0.1, seed=3)
    if by == "document":
        held_out = {names[s.document] for s in plan["test"]}
        seen = {names[s.document] for s in plan["train"] + plan["validation"]}
        assert len(held_out) == 2 and not held_out & seen
        assert {docs[names.index(n)].label for n in held_out} == {"x", "y"}
    if by == "region":
        for name in names:  # train, then validation, then test, with the gap between
            t = max(p for d, p in train if d == name)
            v = [p for d, p in val if d == name]
            assert t + 5 < min(v) and max(v) + 5 < min(p for d, p in test if d == name)


@pytest.mark.parametrize("newline", [["\n"], ["\n", "\n"]], ids=["words", "characters"])
def test_paragraph_passages_end_at_paragraph_breaks(tmp_path, corpus_file, newline):
    from toolkit.default_plugins.passages import paragraph_ends

    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences='cut = "paragraphs"\nmin_length = 5\n'
                                             'split = { test = 0.0 }')
    builder = components.sequences
    tokens = []
    for size in (12, 15, 10, 95, 8, 30, 3):  # paragraphs of these many tokens
        tokens += ["w"] * size + newline
    plan = builder.plan_split([Document("", "d", "x")], [tokens], 0.0, 1)
    passages = [(s.start, s.stop) for s in plan["train"]]
    ends = paragraph_ends(tokens)
    assert len(ends) == 7 and all(tokens[e - 1] == "\n" for e in ends)
    assert all(b - a <= 40 for a, b in passages)
    first = 3 if len(newline) == 1 else 2  # 13 + 16 + 11 tokens fit in 40; 14 + 17 + 12 do not
    assert passages[0] == (0, ends[first - 1])
    for a, b in passages:  # a passage ends at a paragraph break unless one paragraph is too long
        assert b in ends or b - a == 40 or b == len(tokens)
    for (_, b), (a, _) in zip(passages, passages[1:]):
        assert 0 <= a - b < 5  # next to each other, or a piece under min_length between
    covered = sum(b - a for a, b in passages)
    assert covered >= len(tokens) - 2 * 5  # only pieces under min_length are dropped


def test_a_different_seed_deals_passages_differently(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences='split = { by = "passage" }')
    builder = components.sequences
    tokens = [["x"] * n for n in (1000, 700, 1300, 900, 1100, 800)]
    assert builder.plan_split(documents(), tokens, 0.1, 1) != \
        builder.plan_split(documents(), tokens, 0.1, 2)


def test_document_split_needs_two_documents_per_author(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences='split = { by = "document" }')
    docs = documents() + [Document("", "lonely", "z")]
    with pytest.raises(ConfigError, match=r"sequences\.split\.by.*z have only one"):
        components.sequences.plan_split(docs, [["x"] * 500] * 7, 0.1, 1)


def test_random_crops_cut_the_training_text_afresh_each_epoch(tmp_path, corpus_file):
    from toolkit.data.prepare import prepare_config

    components, resolved = components_for(tmp_path, corpus_file, "classifier",
                                          sequences='crops = "random"')
    builder = components.sequences
    prepared = prepare_config(components, resolved)
    labels = prepared.labels
    passages = builder.data(prepared.splits["train"], labels, training=True)
    data = builder.training(passages, seed=1)
    text = {name: ids for name, ids in zip(prepared.splits["train"].places,
                                          prepared.splits["train"].ids)}
    streams = {}  # each document's training ids, in order
    for source, ids in text.items():
        streams.setdefault(source.split(":")[0], []).append(ids)
    joined = {d: "," + ",".join(map(str, np.concatenate(parts))) + ","
              for d, parts in streams.items()}
    epochs = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        batches = [data[k] for k in range(len(data))]
        rows = np.concatenate([b[0] for b in batches])
        assert len(rows) == len(passages)
        assert sorted(np.concatenate([b[1] for b in batches])) == sorted(passages.labels)
        for row, label in zip(rows, np.concatenate([b[1] for b in batches])):
            piece = "," + ",".join(map(str, row[row != 0])) + ","
            inside = [d for d, ids in joined.items() if piece in ids]
            assert inside and all(labels[label] in d for d in inside)  # its author's text
        epochs.append(sorted(map(tuple, rows)))
    assert epochs[0] != epochs[1]


def test_min_documents_leaves_authors_with_fewer_documents_out(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences='split = { by = "document", min_documents = 2 }')
    docs = documents() + [Document("", "lonely", "z")]
    plan = components.sequences.plan_split(docs, [["x"] * 500] * 7, 0.1, 1)
    used = {name: {segment.document for segment in segments} for name, segments in plan.items()}
    assert set().union(used["train"], used["validation"], used["test"]) == set(range(6))
    assert used["left_out"] == {6}  # the lonely document joins no split; [pretrain] reads it


@pytest.mark.parametrize("by", ["region", "passage", "document"])
def test_unseen_authors_join_no_split_and_are_not_left_out_for_pretraining(tmp_path,
                                                                          corpus_file, by):
    components, _ = components_for(
        tmp_path, corpus_file, "classifier",
        sequences=f'split = {{ by = "{by}", min_documents = 2, unseen_authors = ["w"] }}')
    docs = documents() + [Document("", f"w-{i}", "w") for i in range(2)] + \
        [Document("", "lonely", "z")]
    plan = components.sequences.plan_split(docs, [["x"] * 500] * 9, 0.1, 1)
    used = {name: {segment.document for segment in segments} for name, segments in plan.items()}
    assert set().union(used["train"], used["validation"], used["test"]) == set(range(6))
    assert used["unseen"] == {6, 7}  # for `evaluate --unseen-author` only
    for d in (6, 7):  # cut as test passages are, the whole document
        pieces = [(s.start, s.stop) for s in plan["unseen"] if s.document == d]
        assert all(b - a <= 40 for a, b in pieces) and pieces[0][0] == 0
        assert all(b == c for (_, b), (c, _) in zip(pieces, pieces[1:]))
    assert used["left_out"] == {8}  # below min_documents: [pretrain] may read it, not w


@pytest.mark.parametrize("unseen, message", [
    (["v"], r"\['v'\] are not authors of this corpus; its authors are \['w', 'x', 'y'\]"),
    (["w", "x"], r"\['w', 'x'\] leave fewer than 2 of the corpus's 3 authors"),
])
def test_unseen_authors_are_checked_against_the_corpus(tmp_path, corpus_file, unseen, message):
    components, _ = components_for(tmp_path, corpus_file, "classifier",
                                   sequences=f'split = {{ unseen_authors = {json.dumps(unseen)} }}')
    docs = documents() + [Document("", "w-0", "w")]
    with pytest.raises(ConfigError, match=r"sequences\.split\.unseen_authors: " + message):
        components.sequences.plan_split(docs, [["x"] * 500] * 7, 0.1, 1)


def test_unlabelled_documents_are_refused_for_attribution(tmp_path, corpus_file):
    components, _ = components_for(tmp_path, corpus_file, "classifier")
    with pytest.raises(ConfigError, match="needs a label"):
        components.sequences.plan_split([Document("abc" * 100, "plain")], [["a"] * 300], 0.1,
                                        1)


def test_a_classifier_head_on_streams_names_the_fix(tmp_path, corpus_file):
    path = write_config(tmp_path / "c.toml", corpus_file, "classifier")
    text = open(path).read().replace('use = "passages"\nlength = 40', 'use = "stream"\nlength = 40')
    (tmp_path / "stream.toml").write_text(text)
    with pytest.raises(ConfigError, match=r'head\.use.*sequences\.use = "passages"'):
        config_module.build_components(config_module.load(tmp_path / "stream.toml",
                                                          registry()), registry())


def test_a_bad_split_key_names_its_path(tmp_path, corpus_file):
    path = write_config(tmp_path / "c.toml", corpus_file, "classifier",
                        sequences='split = { by = "chapter" }')
    with pytest.raises(ConfigError, match=r"sequences\.split\.by.*received \"chapter\""):
        config_module.load(path, registry())


# --- training, attribute, evaluate ----------------------------------------------------

def test_runs_store_their_labels_and_split(trained_runs):
    run = trained_runs["classifier"]
    assert json.loads((run / "labels.json").read_text()) == {"labels": ["backward", "forward"]}
    split = json.loads((run / "split.json").read_text())
    assert set(split) == {"train", "validation", "test"}
    assert not set(split["train"]) & set(split["test"])


def test_author_lms_attribute_new_text_to_its_author(trained_runs, tmp_path, capsys):
    files = []
    for author in CHAINS:
        path = tmp_path / f"{author}.txt"
        path.write_text(chain_text(author, 300, seed=99))
        files.append(str(path))
    assert main(["attribute", str(trained_runs["author-lms"]), *files, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["ranking"][0]["author"] for r in results] == list(CHAINS)
    assert all(r["passages"] == 8 for r in results)  # 300 characters in passages of 40
    assert all(sum(a["probability"] for a in r["ranking"]) == pytest.approx(1) for r in results)


@pytest.mark.parametrize("author", list(CHAINS))
def test_attribute_reads_standard_input(trained_runs, monkeypatch, capsys, author):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(chain_text(author, 200, seed=7)))
    assert main(["attribute", str(trained_runs["classifier"])]) == 0
    assert capsys.readouterr().out.startswith(f"<stdin>: {author}")


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("   \n", "is empty"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (None, "file not found"),
])
def test_attribute_refuses_unusable_files(trained_runs, tmp_path, capsys, content, message):
    path = tmp_path / "input.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert main(["attribute", str(trained_runs["classifier"]), str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


def test_attribute_refuses_a_generator_run(tmp_path, tiny_config, capsys):
    from toolkit.training.phases import train

    run = train(tiny_config, tmp_path / "gen", verbose=0)
    (tmp_path / "t.txt").write_text("To be")
    assert main(["attribute", str(run.path), str(tmp_path / "t.txt")]) == 2
    assert "cannot attribute" in capsys.readouterr().err
    assert main(["evaluate", str(run.path)]) == 0  # a generator run reports perplexity
    assert "bits/token" in capsys.readouterr().out


def test_evaluate_reports_the_lstm_beside_the_baseline(trained_runs, capsys):
    run = trained_runs["author-lms"]
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "char n-grams" in out and "Burrows' Delta" in out and "confusion matrix" in out
    assert "LSTM, on-split offsets" in out  # per-author language models can be normalised
    report = json.loads((run / "evaluation.json").read_text())
    assert report["split"] == "test"
    assert report["lstm"]["accuracy"] >= 0.9
    assert sum(map(sum, report["lstm"]["confusion"])) == report["passages"]
    assert (run / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_pools_documents_calibrates_and_stacks_on_validation(trained_runs, capsys):
    run = trained_runs["author-lms"]
    assert main(["evaluate", str(run), "--unseen-author", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    test_documents = {s.rsplit(":", 1)[0] for s in
                      json.loads((run / "split.json").read_text())["test"]}
    for model in ("lstm", "lstm_calibrated", "lstm_transductive", "baseline", "burrows_delta",
                  "cosine_delta", "ensemble"):
        assert report[model]["documents"]["count"] == len(test_documents)
        assert 0 <= report[model]["ece"] <= 1
    calibration = json.loads((run / "calibration.json").read_text())
    assert report["calibration"]["temperature"] == calibration["temperature"] > 0
    assert report["calibration"]["ece_before"] == report["lstm"]["ece"]
    assert report["unseen_author"]["auroc"] is None  # two authors: one left when one is out
    assert set(report["ensemble"]["weights"]) == {"lstm", "ngrams"}  # [ensemble] members
    assert (run / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "ensemble.pkl").is_file()


def test_evaluate_only_reads_and_twice_gives_the_same_files(trained_runs, tmp_path):
    import shutil

    from toolkit.attribution.evaluate import evaluate

    run = tmp_path / "run"
    shutil.copytree(trained_runs["author-lms"], run)
    # training fitted the calibration and the ensemble; evaluate does not touch them
    fitted = {name: (run / name).read_bytes() for name in ("calibration.json", "ensemble.pkl")}
    first = evaluate(run, unseen_author=True)
    written = {name: (run / name).read_bytes()
               for name in ("evaluation.json", "confusion.png", "reliability.png")}
    second = evaluate(run, unseen_author=True)
    assert first == second
    for name, data in {**fitted, **written}.items():
        assert (run / name).read_bytes() == data, name
    # without them, evaluate says so and writes neither
    (run / "calibration.json").unlink()
    (run / "ensemble.pkl").unlink()
    report = evaluate(run)
    assert "lstm_calibrated" not in report and "ensemble" not in report
    assert "toolkit calibrate" in report["calibration_missing"]
    assert not (run / "calibration.json").exists() and not (run / "ensemble.pkl").exists()


def test_a_classifier_report_has_no_on_split_offsets(trained_runs):
    """A classifier's scores are not per-token likelihoods: nothing to normalise."""
    from toolkit.attribution.evaluate import evaluate

    report = evaluate(trained_runs["classifier"], baseline=False)
    assert "lstm_calibrated" in report and "lstm_transductive" not in report


def test_attribute_with_the_ensemble_answers_like_the_lstm_on_clear_texts(trained_runs,
                                                                         tmp_path, capsys):
    run = trained_runs["author-lms"]
    assert main(["evaluate", str(run)]) == 0
    files = []
    for author in CHAINS:
        files.append(tmp_path / f"{author}.txt")
        files[-1].write_text(chain_text(author, 300, seed=98))
    capsys.readouterr()
    assert main(["attribute", str(run), *map(str, files), "--model", "ensemble", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["answer"] for r in results] == list(CHAINS)
    assert all(r["calibrated"] for r in results)
    assert main(["attribute", str(run), *map(str, files), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert [r["ranking"] for r in alone] != [r["ranking"] for r in results]


def test_the_ensemble_is_refused_until_calibrate_has_fitted_it(trained_runs, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_runs["classifier"], run)
    (run / "ensemble.pkl").unlink(missing_ok=True)
    text = tmp_path / "t.txt"
    text.write_text(chain_text("forward", 120, seed=5))
    assert main(["attribute", str(run), str(text), "--model", "ensemble"]) == 2
    assert f"{run} has no ensemble.pkl: `toolkit calibrate {run}`" in capsys.readouterr().err
    assert main(["calibrate", str(run)]) == 0
    assert "ensemble weights" in capsys.readouterr().out
    assert main(["attribute", str(run), str(text), "--model", "ensemble"]) == 0


def test_below_the_threshold_the_answer_is_unknown(trained_runs, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_runs["author-lms"], run)
    calibration = json.loads((run / "calibration.json").read_text())
    text = tmp_path / "t.txt"
    text.write_text(chain_text("forward", 120, seed=5))
    # Log-odds above any a text can have: every answer must be "unknown".
    (run / "calibration.json").write_text(json.dumps({**calibration, "unknown_below": 1e6}))
    assert main(["attribute", str(run), str(text)]) == 0
    assert capsys.readouterr().out.startswith(f"{text}: unknown  (forward ")
    (run / "calibration.json").write_text(json.dumps({**calibration, "unknown_below": None}))
    assert main(["attribute", str(run), str(text)]) == 0
    assert capsys.readouterr().out.startswith(f"{text}: forward  (forward ")


def test_evaluate_without_a_test_split_reports_validation_and_skips_the_ensemble(
        tmp_path, corpus_file, capsys):
    from toolkit.training.phases import train

    config = write_config(tmp_path / "c.toml", corpus_file, "author-lms", epochs=1,
                          sequences='split = { test = 0.0 }')
    run = train(config, tmp_path / "run", verbose=0)
    assert main(["evaluate", str(run.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "validation" and "ensemble" not in report
    assert report["calibration"]["fitted_on_this_split"] is True


def test_an_old_run_without_monitor_keys_resumes_choosing_epochs_as_before(trained_runs,
                                                                         tmp_path):
    import re
    import shutil

    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    old = tmp_path / "old"
    shutil.copytree(trained_runs["classifier"], old)
    stored = (old / "config.toml").read_text()
    (old / "config.toml").write_text(re.sub(r"(?m)^(monitor|patience) = .*\n", "", stored))
    assert Run(old).config["train"]["monitor"] == "val_loss"  # what classifiers used then
    run = train(None, old, ["train.epochs=5"], resume=True, verbose=0)
    assert run.progress()["epochs_done"] == 5
    assert run.metrics()["kept"]["monitor"] == "val_loss"


def test_the_kept_model_has_the_best_validation_macro_f1_and_metrics_say_why(trained_runs):
    from sklearn.metrics import f1_score

    from toolkit.attribution.attribute import Attributor
    from toolkit.attribution.evaluate import prepared_data
    from toolkit.runs.rundir import Run, read_history

    run = Run(trained_runs["classifier"])
    kept = run.metrics()["kept"]
    assert kept["monitor"] == "val_macro_f1"  # the attribution heads' default
    history = read_history(run.file("history.csv"))
    logged = [float(row["val_macro_f1"]) for row in history]
    assert kept["value"] == pytest.approx(max(logged), abs=1e-5)
    assert kept["epoch"] == logged.index(max(logged)) + 1
    # The model the run kept scores that figure on the validation split.
    validation = run.builder.data(prepared_data(run).splits["validation"], run.labels)
    predicted = Attributor(run).passage_scores(validation.ids).argmax(axis=1)
    assert f1_score(validation.labels, predicted, average="macro") == \
        pytest.approx(kept["value"], abs=1e-4)
    assert kept["stopped_by"] == "train.epochs" and "highest val_macro_f1" in kept["why"]


def test_patience_stops_a_run_whose_monitor_stopped_improving_and_resume_respects_it(
        tmp_path, corpus_file):
    from toolkit.training.phases import train

    config = write_config(tmp_path / "c.toml", corpus_file, "classifier", epochs=8)
    # With a learning rate of 1e-12 nothing changes: val_loss is best at epoch 1 and the
    # run stops after 1 + patience epochs.
    run = train(config, tmp_path / "run", ["train.patience=2", "train.learning_rate=1e-12",
                                           "train.monitor=val_loss"], verbose=0)
    kept = run.metrics()["kept"]
    assert run.progress()["epochs_done"] == 3
    assert kept["stopped_by"] == ("val_loss did not improve for 2 epochs after epoch 1 "
                                  "(train.patience = 2)")
    run = train(None, tmp_path / "run", ["train.epochs=10"], resume=True, verbose=0)
    assert run.progress()["epochs_done"] == 3  # still out of patience: nothing more trained


def test_a_monitor_the_run_never_logs_is_refused_before_any_file(tmp_path, corpus_file):
    from toolkit.training.phases import train

    config = write_config(tmp_path / "c.toml", corpus_file, "classifier")
    with pytest.raises(ConfigError, match=r"train\.monitor: this run never logs "
                                          r"'val_perplexity'.*val_macro_f1"):
        train(config, tmp_path / "run", ["train.monitor=val_perplexity"], verbose=0)
    assert not (tmp_path / "run").exists()


def test_each_author_head_writes_text_its_own_head_scores_best(trained_runs, capsys):
    from toolkit.attribution.attribute import Attributor
    from toolkit.runs.rundir import Run

    run = Run(trained_runs["author-lms"])
    attributor = Attributor(run)
    for index, author in enumerate(run.labels):
        assert main(["generate", str(run.path), "--author", author, "--length", "400",
                     "--prime", "a", "--seed", "3", "--temperature", "0.7"]) == 0
        text = capsys.readouterr().out.rstrip("\n")
        passages = attributor.cut(run.vocab.encode(run.preprocessor(text)))
        scores = attributor.passage_scores(passages).sum(axis=0)
        assert scores.argmax() == index, (author, text[:80])


@pytest.mark.parametrize("args, message", [
    ([], "choose whose style to write with --author"),
    (["--author", "nobody"], "has no author 'nobody'; its authors are backward, forward"),
])
def test_generate_on_an_author_lms_run_needs_a_known_author(trained_runs, capsys, args,
                                                             message):
    assert main(["generate", str(trained_runs["author-lms"]), *args]) == 2
    assert message in capsys.readouterr().err


# --- one core, several heads ----------------------------------------------------------

def test_init_copies_exactly_the_encoder_and_core_and_freeze_keeps_them(trained_runs, tmp_path,
                                                                         corpus_file):
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    source = Run(trained_runs["author-lms"]).load_model()
    config = write_config(tmp_path / "ft.toml", corpus_file, "classifier", epochs=1,
                          init=f'run = "{trained_runs["author-lms"]}"\nfreeze = true')
    run = train(config, tmp_path / "ft", verbose=0)
    tuned = run.load_model()
    copied = layers_of(tuned)
    assert [layer.name for layer in copied] == ["encoder", "core_lstm_0"]
    for layer in copied:
        for a, b in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert run.vocab.tokens == Run(trained_runs["author-lms"]).vocab.tokens
    assert run.metrics()["init"]["copied_layers"] == ["encoder", "core_lstm_0"]


def test_init_copy_core_only_leaves_the_encoder_new_and_trainable(trained_runs, tmp_path,
                                                                   corpus_file):
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    source = Run(trained_runs["author-lms"]).load_model()
    config = write_config(tmp_path / "ft.toml", corpus_file, "classifier", epochs=1,
                          init=f'run = "{trained_runs["author-lms"]}"\ncopy = ["core"]\n'
                               f'freeze = true')
    tuned = train(config, tmp_path / "ft", verbose=0).load_model()
    for a, b in zip(tuned.get_layer("core_lstm_0").get_weights(),
                    source.get_layer("core_lstm_0").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(tuned.get_layer("encoder").get_weights()[0],
                              source.get_layer("encoder").get_weights()[0])
    assert tuned.get_layer("encoder").trainable and not tuned.get_layer("core_lstm_0").trainable


def test_init_copy_head_starts_every_author_as_the_source_language_model(tmp_path,
                                                                          corpus_file):
    from toolkit.model.assembly import copy_weights

    generator, _ = components_for(tmp_path, corpus_file, "generator")
    authors, _ = components_for(tmp_path, corpus_file, "author-lms")
    tf.keras.utils.set_random_seed(3)
    source = build_model(generator, 6, None, False)
    target = build_model(authors, 6, None, False, ["x", "y", "z"])
    copied = copy_weights(source, target, ["encoder", "core", "head"],
                          heads=(generator.head, authors.head))
    assert copied == ["head_author_lms", "encoder", "core_lstm_0"]
    tokens = np.random.default_rng(0).integers(1, 6, (3, 12))
    expected = source.predict(tokens, verbose=0)
    for author in range(3):
        got = target.predict({"tokens": tokens, "author": np.full(3, author)}, verbose=0)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    classifier, _ = components_for(tmp_path, corpus_file, "classifier")
    with pytest.raises(ToolkitError, match="has no generator head"):
        copy_weights(build_model(classifier, 6, None, False, ["x", "y"]), target, ["head"],
                     heads=(classifier.head, authors.head))
    with pytest.raises(ToolkitError, match="no such layer"):
        copy_weights(source, build_model(classifier, 6, None, False, ["x", "y"]), ["head"],
                     heads=(generator.head, classifier.head))


def test_the_old_core_init_from_key_points_to_the_init_section(tmp_path, corpus_file):
    config = write_config(tmp_path / "old.toml", corpus_file, "classifier",
                          core='init_from = "runs/x"\nfreeze = true')
    with pytest.raises(ConfigError, match=r"core\.freeze: weight initialisation has its own "
                                          r"section now: write init\.freeze, init\.run under "
                                          r"\[init\]"):
        config_module.load(config, registry())


@pytest.mark.parametrize("init, message", [
    ('copy = []', r"init\.copy: copies nothing"),
    ('copy = ["heads"]', r"init\.copy: expected a list of"),
    ('freeze = true', r"init\.freeze: applies to weights copied from another run"),
    ('lr_decay = 2.6', r"init\.lr_decay: applies to weights copied from another run"),
    ('run = "x"\nlr_decay = 0.5', r"init\.lr_decay: must be at least 1 .*received 0\.5"),
])
def test_init_settings_are_checked(tmp_path, corpus_file, init, message):
    config = write_config(tmp_path / "bad.toml", corpus_file, "classifier", init=init)
    with pytest.raises(ConfigError, match=message):
        config_module.load(config, registry())


def test_unfreeze_after_trains_the_core_from_that_epoch_and_resumes(trained_runs, tmp_path,
                                                                     corpus_file):
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    source = Run(trained_runs["classifier"]).load_model()
    config = write_config(tmp_path / "ft.toml", corpus_file, "author-lms", epochs=1,
                          init=f'run = "{trained_runs["classifier"]}"\nfreeze = true\n'
                               f'unfreeze_after = 1')
    run = train(config, tmp_path / "ft", verbose=0, overrides=["train.keep=last"])
    frozen = run.load_model()  # epoch 0 ran with the core frozen
    np.testing.assert_array_equal(frozen.get_layer("core_lstm_0").get_weights()[0],
                                  source.get_layer("core_lstm_0").get_weights()[0])
    steps = int(frozen.optimizer.iterations)

    run = train(None, tmp_path / "ft", ["train.epochs=2"], resume=True, verbose=0)
    tuned = run.load_model()
    assert all(layer.trainable for layer in layers_of(tuned))
    assert not np.array_equal(tuned.get_layer("core_lstm_0").get_weights()[0],
                              source.get_layer("core_lstm_0").get_weights()[0])
    assert int(tuned.optimizer.iterations) == 2 * steps  # the step count survived the rebuild
    history = (run.path / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header and both epochs, across the two fit phases


def test_lr_decay_steps_each_copied_layer_more_gently_and_survives_a_resume(trained_runs,
                                                                           tmp_path, corpus_file):
    """ULMFiT's discriminative rates: with SGD, a layer's step is the learning rate times
    its factor; the rates are in the checkpoint's optimizer, so a resumed run keeps them."""
    import keras

    from toolkit.model.assembly import layer_rates
    from toolkit.model.optimizers import LayerRateSGD
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    config = write_config(tmp_path / "ft.toml", corpus_file, "author-lms", epochs=1,
                          init=f'run = "{trained_runs["classifier"]}"\nfreeze = true\n'
                               f'unfreeze_after = 1\nlr_decay = 2.0')
    run = train(config, tmp_path / "ft", verbose=0,
                overrides=["train.keep=last", "train.optimizer=sgd", "train.clipnorm=0"])
    model = run.load_model()
    assert layer_rates(model, run.config["init"]) == {"core_lstm_0": 0.5, "encoder": 0.25}

    # One step of SGD on a known gradient moves each layer by rate x factor x gradient.
    optimizer = LayerRateSGD(learning_rate=0.1, layer_rates={"core_lstm_0": 0.5,
                                                             "encoder": 0.25})
    variables = [model.get_layer(name).weights[0] for name in ("encoder", "core_lstm_0")]
    variables.append(model.layers[-1].weights[0])
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer.apply([keras.ops.ones(v.shape) for v in variables], variables)
    steps = [b - keras.ops.convert_to_numpy(v) for b, v in zip(before, variables)]
    for step, expected in zip(steps, (0.025, 0.05, 0.1)):
        np.testing.assert_allclose(step, expected, rtol=1e-5)

    run = train(None, tmp_path / "ft", ["train.epochs=2"], resume=True, verbose=0)
    tuned = Run(run.path).load_model()
    assert isinstance(tuned.optimizer, LayerRateSGD)  # rebuilt at unfreezing, with the rates
    assert tuned.optimizer.layer_rates == {"core_lstm_0": 0.5, "encoder": 0.25}

    # A new process (toolkit evaluate, generate) loads the run with its optimizer.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from toolkit.runs.rundir import Run; "
                               "print(Run(sys.argv[1]).load_model().optimizer.layer_rates)",
         str(run.path)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "{'core_lstm_0': 0.5, 'encoder': 0.25}"


@pytest.fixture(scope="module")
def corpus_with_a_lonely_author(tmp_path_factory, corpus_file):
    """The two chain authors with two documents each, and a third author with one."""
    path = tmp_path_factory.mktemp("lonely") / "authors.jsonl"
    lonely = json.dumps({"text": chain_text("forward", 2000, 9), "label": "lonely",
                         "name": "lonely-1"})
    path.write_text(corpus_file.read_text() + lonely + "\n")
    return path


def test_pretraining_reads_training_text_and_left_out_documents_and_the_run_starts_from_it(
        tmp_path, corpus_with_a_lonely_author):
    """[pretrain]: a stream language model on the training passages and the documents the
    split leaves out, never a validation or test token; the run copies its encoder and core
    (frozen here, so they stay exactly the pretrained ones), and a resumed run keeps them
    without pretraining again."""
    from toolkit.data.prepare import prepare_config
    from toolkit.attribution.evaluate import evaluate
    from toolkit.training.pretrain import pretraining_text
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    config = write_config(tmp_path / "pre.toml", corpus_with_a_lonely_author, "author-lms",
                          epochs=1, sequences='split = { by = "document", min_documents = 2 }',
                          init="freeze = true")
    with open(config, "a") as f:
        f.write("\n[pretrain]\nepochs = 3\nbatch_size = 8\nlength = 20\n")
    resolved = config_module.load(config, registry())
    prepared = prepare_config(config_module.build_components(resolved, registry()), resolved)
    text = pretraining_text(prepared.splits)
    splits = prepared.splits
    assert text.places == splits["train"].places + splits["left_out"].places
    assert [s.split(":")[0] for s in splits["left_out"].places] == ["lonely-1"]
    def spans(sources):  # document name -> token ranges
        out = {}
        for source in sources:
            name, _, span = source.rpartition(":")
            start, stop = map(int, span.split("-"))
            out.setdefault(name, []).append((start, stop))
        return out

    held_out = spans(splits["validation"].places + splits["test"].places)
    assert held_out
    for name, ranges in spans(text.places).items():  # no token read is held out
        for a, b in ranges:
            assert all(b <= c or d <= a for c, d in held_out.get(name, []))
    assert "lonely" not in splits["train"].labels + splits["validation"].labels + \
        splits["test"].labels

    run = train(config, tmp_path / "run", verbose=0, overrides=["train.keep=last"])
    pretrained = Run(run.path).file("pretrained.keras")
    source = runs_module.load_keras_file(pretrained)
    model = run.load_model()
    for name in ("encoder", "core_lstm_0"):
        assert not model.get_layer(name).trainable
        for a, b in zip(model.get_layer(name).get_weights(),
                        source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    figures = run.metrics()["pretrain"]
    assert figures["tokens"] == text.num_tokens and figures["left_out_documents"] == 1
    assert figures["epochs"] == 3
    assert figures["loss"] < np.log(len(run.vocab))  # it learned more than the alphabet
    assert run.metrics()["init"]["pretrained"] and run.metrics()["init"]["run"] is None

    written = pretrained.stat().st_mtime_ns
    run = train(None, tmp_path / "run", ["train.epochs=2"], resume=True, verbose=0)
    assert pretrained.stat().st_mtime_ns == written  # no second pretraining
    assert run.metrics()["pretrain"] == figures
    # The lonely author is a stranger to the heads, though the pretrained core read it.
    strangers = evaluate(run.path, unseen_author=True)["strangers"]
    assert strangers["from"] == {"left_out": 1} and strangers["left_out_read_by_pretraining"]

    # --overwrite without [pretrain]: the old language model and its figures go too.
    run = train(config, tmp_path / "run", ["pretrain.epochs=0", "init.freeze=false",
                                           "train.epochs=1"], overwrite=True, verbose=0)
    assert not pretrained.exists() and not run.file("pretrain.json").exists()
    assert not run.metrics().get("pretrain") and not run.metrics().get("init")


def test_diverging_pretraining_exits_with_status_3_before_the_heads_train(
        tmp_path, corpus_with_a_lonely_author, capsys):
    config = write_config(tmp_path / "pre.toml", corpus_with_a_lonely_author, "author-lms",
                          epochs=1, sequences='split = { by = "document", min_documents = 2 }')
    with open(config, "a") as f:
        f.write("\n[pretrain]\nepochs = 2\nbatch_size = 8\nlength = 20\n")
    run = tmp_path / "run"
    status = main(["train", config, "--run-dir", str(run), "--set",
                   "pretrain.learning_rate=1e6", "--set", "train.clipnorm=0", "--set",
                   "train.divergence_steps=2"])
    err = capsys.readouterr().err
    assert status == 3 and "pretraining diverged" in err and "pretrain.learning_rate" in err
    assert "Traceback" not in err and not (run / "model.keras").exists()


def test_pretraining_is_refused_where_it_cannot_apply(tmp_path, corpus_file, tiny_config):
    with pytest.raises(ConfigError, match=r"pretrain\.epochs: .*already is a language model"):
        from toolkit.training.phases import train

        train(tiny_config, tmp_path / "run", ["pretrain.epochs=2"], verbose=0)
    config = write_config(tmp_path / "ok.toml", corpus_file, "classifier", init="freeze = true")
    config_module.load(config, registry(), ["pretrain.epochs=1"])  # freeze needs no init.run
    with pytest.raises(ConfigError, match=r"init\.freeze: .*or pretrain\.epochs"):
        config_module.load(config, registry())
    config = write_config(tmp_path / "head.toml", corpus_file, "classifier",
                          init='copy = ["encoder", "core", "head"]')
    with pytest.raises(ConfigError, match=r"init\.copy: \"head\" starts a next-token head"):
        train(config, tmp_path / "run2", ["pretrain.epochs=1"], verbose=0)
    assert not (tmp_path / "run2").exists()


def test_pretraining_from_an_author_lms_run_gives_every_author_the_pretrained_head(
        trained_runs, tmp_path, corpus_file):
    """init.run + [pretrain] + init.copy with "head": the language model takes the
    encoder and core of a run that has no generator head, and the author heads start
    from the language model's own softmax."""
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    config = write_config(tmp_path / "chain.toml", corpus_file, "author-lms", epochs=1,
                          init=f'run = "{trained_runs["author-lms"]}"\n'
                               f'copy = ["encoder", "core", "head"]\nfreeze = true')
    with open(config, "a") as f:
        f.write("\n[pretrain]\nepochs = 1\nbatch_size = 8\nlength = 20\n")
    run = train(config, tmp_path / "run", verbose=0, overrides=["train.epochs=1",
                                                               "train.learning_rate=1e-9"])
    language_model = runs_module.load_keras_file(Run(run.path).file("pretrained.keras"))
    kernel = language_model.get_layer("head_generator").get_weights()[0]
    heads = run.load_model().get_layer("head_author_lms").get_weights()[0]
    for author in range(heads.shape[0]):  # a learning rate of 1e-9 barely moves them
        np.testing.assert_allclose(heads[author], kernel, atol=1e-5)
    assert run.metrics()["init"]["pretrained"] and run.metrics()["init"]["run"]


def test_unfreeze_after_needs_freeze(tmp_path, corpus_file, trained_runs):
    config = write_config(tmp_path / "ft.toml", corpus_file, "classifier",
                          init=f'run = "{trained_runs["classifier"]}"\nunfreeze_after = 2')
    with pytest.raises(ConfigError, match=r"init\.unfreeze_after.*freeze = true"):
        config_module.load(config, registry())


def test_a_stateful_generator_core_loads_under_a_classifier(tmp_path, corpus_file):
    from toolkit.runs.rundir import Run
    from toolkit.training.phases import train

    generator = write_config(tmp_path / "lm.toml", corpus_file, "generator", epochs=1)
    text = open(generator).read().replace('use = "passages"', 'use = "stream"')
    (tmp_path / "lm.toml").write_text(text)
    source = train(str(tmp_path / "lm.toml"), tmp_path / "lm", verbose=0)
    assert source.config["sequences"]["use"] == "stream"
    config = write_config(tmp_path / "cls.toml", corpus_file, "classifier", epochs=1,
                          init=f'run = "{source.path}"\nfreeze = true')
    run = train(config, tmp_path / "cls", verbose=0)
    stateful, stateless = Run(source.path).load_model(), run.load_model()
    assert stateful.get_layer("core_lstm_0").stateful
    assert not stateless.get_layer("core_lstm_0").stateful
    for a, b in zip(stateful.get_layer("core_lstm_0").get_weights(),
                    stateless.get_layer("core_lstm_0").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_init_with_other_core_settings_is_refused(trained_runs, tmp_path, corpus_file):
    from toolkit.training.phases import train

    config = write_config(tmp_path / "ft.toml", corpus_file, "classifier",
                          init=f'run = "{trained_runs["classifier"]}"')
    with pytest.raises(ToolkitError, match="core_lstm_0.*same encoder and core settings"):
        train(config, tmp_path / "ft", verbose=0, overrides=["core.units=32"])


def test_evaluate_measures_unknown_on_authors_the_run_never_trained_on(tmp_path,
                                                                      corpus_with_a_lonely_author,
                                                                      capsys):
    """``unseen_authors``: the named author's text is in no split the run reads; evaluate
    --unseen-author scores it as a stranger's beside the test split's known authors."""
    from toolkit.training.phases import train

    config = write_config(tmp_path / "open.toml", corpus_with_a_lonely_author, "author-lms",
                          epochs=2, sequences='split = { unseen_authors = ["lonely"] }')
    run = train(config, tmp_path / "run", verbose=0)
    assert run.labels == ["backward", "forward"]
    split = json.loads(run.file("split.json").read_text())
    assert {s.split(":")[0] for s in split["unseen"]} == {"lonely-1"}
    assert not any(s.startswith("lonely") for name in ("train", "validation", "test")
                   for s in split[name])
    assert main(["evaluate", str(run.path), "--unseen-author", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["strangers"]
    assert report["authors"] == ["lonely"] and report["documents"] == 1
    assert report["from"] == {"unseen": 1} and not report["left_out_read_by_pretraining"]
    assert report["passages"] == 2000 // 40
    for model in ("lstm", "ensemble"):
        for level in ("passages", "documents"):
            figures = report[model][level]
            assert 0 <= figures["auroc"] <= 1
            assert 0 <= figures["strangers_unknown"] <= 1 and 0 <= figures["known_unknown"] <= 1
    assert report["lstm"]["documents"]["count"] == [4, 1]  # each test region is a document
    assert main(["evaluate", str(run.path), "--unseen-author"]) == 0
    out = capsys.readouterr().out
    assert "strangers: 1 document(s) by 1 author(s) the run never trained on" in out
