"""Cross-validation over documents: folds, intervals, paired tests, the Deltas, resuming."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from toolkit.attribution import stats
from toolkit.attribution.delta import Delta, words
from toolkit.cli import main
from toolkit.splits import document_folds
from tests.test_attribution import CHAINS as ATTRIBUTION_CHAINS
from tests.test_attribution import chain_text as attribution_chain_text
from tests.test_attribution import write_config as write_attribution_config

# Three "authors" over the same letters, told apart by the order of the letters.
CHAINS = {**ATTRIBUTION_CHAINS, "stutter": {"a": "a", "b": "c", "c": "b"}}


def chain_text(author: str, n: int, seed: int) -> str:
    return attribution_chain_text(author, n, seed, CHAINS)


def write_corpus(path, authors=CHAINS, documents=3, labelled=True, lonely=True):
    rows = [{"text": chain_text(a, 1200, seed), "label": a, "name": f"{a}-{seed}"}
            for a in authors for seed in range(1, documents + 1)]
    if lonely:  # one author with one document: a stranger to every fold
        rows.append({"text": chain_text("forward", 1200, 99)[::-1], "label": "lonely",
                     "name": "lonely-1"})
    if not labelled:
        for row in rows:
            del row["label"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(path, corpus, min_documents=2):
    return write_attribution_config(path, corpus, "classifier", epochs=2, sequences=(
        f"[sequences.split]\nmin_documents = {min_documents}"))


@pytest.fixture(scope="module")
def crossvalidated(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossval")
    config = write_config(root / "cv.toml", write_corpus(root / "c.jsonl"))
    assert main(["crossval", config, "--folds", "3", "--out", str(root / "out")]) == 0
    return root / "out"


@pytest.mark.parametrize("counts,folds", [([3, 3, 3], 3), ([2, 5, 3, 2], 4), ([2, 2], 2),
                                          ([4, 2, 7], 13), ([3, 9], 5)])
def test_every_document_is_in_one_fold_and_every_fold_trains_on_every_author(counts, folds):
    labels = [f"author{a}" for a, n in enumerate(counts) for _ in range(n)]
    fold_of = document_folds(labels, folds, seed=3)
    assert len(fold_of) == len(labels) and set(fold_of) <= set(range(folds))
    sizes = Counter(fold_of)
    assert max(sizes.values()) - min(sizes.get(f, 0) for f in range(folds)) <= 1
    for fold in range(folds):  # an author's documents never all tested at once
        for author in set(labels):
            trained = [d for d, (a, f) in enumerate(zip(labels, fold_of))
                       if a == author and f != fold]
            assert trained, (author, fold)
    assert document_folds(labels, folds, seed=3) == fold_of  # reproducible


def test_each_document_is_tested_once_by_a_run_that_never_read_it(crossvalidated):
    plan = json.loads((crossvalidated / "crossval-plan.json").read_text())
    tested = []
    for fold in (1, 2, 3):
        split = json.loads((crossvalidated / f"fold-{fold}" / "split.json").read_text())
        documents = {name: {p.rsplit(":", 1)[0] for p in split[name]}
                     for name in ("train", "validation", "test")}
        assert documents["test"], fold
        assert not documents["test"] & (documents["train"] | documents["validation"])
        assert documents["test"] == {d for d, f in plan["documents"].items() if f == fold - 1}
        assert "lonely-1" not in documents["train"] | documents["validation"] | documents["test"]
        tested += sorted(documents["test"])
    assert sorted(tested) == sorted(plan["documents"]) and len(tested) == 9


def test_crossval_pools_every_model_with_intervals_and_compares_with_the_best_baseline(
        crossvalidated):
    results = json.loads((crossvalidated / "crossval.json").read_text())
    assert results["documents"] == 9 and results["folds"] == 3
    assert set(results["models"]) == {"lstm", "lstm_calibrated", "ngrams", "burrows_delta",
                                      "cosine_delta", "ensemble", "ensemble_folds"}
    for model in results["models"].values():
        low, high = model["accuracy_ci"]
        assert low <= model["accuracy"] <= high
        d = model["documents"]
        assert d["count"] == 9 and d["accuracy_ci"][0] <= d["accuracy"] <= d["accuracy_ci"][1]
    comparisons = results["comparisons"]
    best = comparisons["against"]
    assert best in ("ngrams", "burrows_delta", "cosine_delta")
    assert all(results["models"][best]["documents"]["accuracy"]
               >= results["models"][b]["documents"]["accuracy"]
               for b in ("ngrams", "burrows_delta", "cosine_delta"))
    for name in ("lstm", "lstm_calibrated", "ensemble", "ensemble_folds"):
        c = comparisons[name]
        expected = (results["models"][name]["documents"]["accuracy"]
                    - results["models"][best]["documents"]["accuracy"])
        assert c["document_accuracy"] == pytest.approx(expected, abs=1e-3)
        assert 0 <= c["mcnemar_documents"]["p"] <= 1
    open_set = results["open_set"]
    assert open_set["stranger_documents"] == 1 and open_set["stranger_authors"] == ["lonely"]
    assert 0 <= open_set["ensemble"]["auroc"] <= 1


def test_a_fold_run_is_an_ordinary_run_whose_evaluate_shows_intervals(crossvalidated, capsys):
    assert main(["evaluate", str(crossvalidated / "fold-1")]) == 0
    out = capsys.readouterr().out
    assert "[95% CI]" in out and "Burrows' Delta" in out and "Cosine Delta" in out
    report = json.loads((crossvalidated / "fold-1" / "evaluation.json").read_text())
    low, high = report["lstm"]["documents"]["accuracy_ci"]
    assert low <= report["lstm"]["documents"]["accuracy"] <= high
    assert report["comparisons"]["against"] in ("baseline", "burrows_delta", "cosine_delta")


def test_the_report_shows_a_crossval(crossvalidated, tmp_path):
    assert main(["report", str(crossvalidated), "--output", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Cross-validated over documents" in html and "McNemar" in html
    assert "Burrows&#x27; Delta" in html or "Burrows' Delta" in html


def test_a_killed_crossval_continues_with_the_folds_it_has_not_finished(tmp_path):
    config = write_config(tmp_path / "cv.toml", write_corpus(tmp_path / "c.jsonl"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "toolkit.cli", "crossval", config, "--folds", "3",
               "--out", str(out)]
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = out / "fold-1" / "predictions.json"
    deadline = time.monotonic() + 240
    while not first.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.is_file() and not (out / "crossval.json").exists()
    model_time = (out / "fold-1" / "model.keras").stat().st_mtime_ns
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fold 1/3: done before" in done.stdout
    assert (out / "fold-1" / "model.keras").stat().st_mtime_ns == model_time
    results = json.loads((out / "crossval.json").read_text())
    assert results["documents"] == 9


@pytest.mark.parametrize("case,args,message", [
    ("too many folds", ["--folds", "10"], "at most 9 folds"),
    ("one fold", ["--folds", "1"], "2 or more folds"),
    ("not a number", ["--folds", "five"], "--folds: expected a number"),
    ("no labels", ["--folds", "3"], "no label"),
    ("one author", ["--folds", "2"], "2 or more authors"),
    ("one document each", ["--folds", "3"], "min_documents"),
])
def test_bad_input_gets_one_line_and_exit_2(tmp_path, capsys, case, args, message):
    corpus = tmp_path / "c.jsonl"
    if case == "no labels":
        write_corpus(corpus, labelled=False)
    elif case == "one author":
        write_corpus(corpus, authors={"forward": None})
    else:
        write_corpus(corpus)
    config = write_config(tmp_path / "cv.toml", corpus,
                          min_documents=1 if case == "one document each" else 2)
    assert main(["crossval", config, *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "fold-1").exists()


# --- the statistics, on data with answers worked out by hand ---------------------------

def test_mcnemar_exact_matches_the_binomial_table():
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
    result = stats.mcnemar_exact(a, b)
    # 10 against 2: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert result == {"a_only": 10, "b_only": 2, "p": round(2 * 79 / 4096, 6)}
    assert stats.mcnemar_exact(a, a)["p"] == 1.0  # no disagreement
    even = stats.mcnemar_exact(np.array([True, False]), np.array([False, True]))
    assert even["p"] == 1.0


def test_the_bootstrap_resamples_documents_not_passages():
    # Two documents of 50 passages: one all right, one all wrong. Drawing two documents
    # gives accuracy 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the 95 % interval
    # is [0, 1]; resampling passages would have given about 0.5 +- 0.1.
    correct = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    documents = np.r_[np.zeros(50, int), np.ones(50, int)]
    resamples = stats.document_resamples(2, rounds=4000, seed=1)
    values = stats.passage_accuracy(correct, documents, resamples)
    assert set(np.round(values, 6)) == {0.0, 0.5, 1.0}
    assert stats.interval(values) == [0.0, 1.0]
    assert abs((values == 0.5).mean() - 0.5) < 0.03


def test_a_document_accuracy_interval_has_the_binomial_width():
    # 80 of 100 documents right: the bootstrap distribution is Binomial(100, 0.8) / 100,
    # whose middle 95 % is 0.72 to 0.88 (0.8 -+ 1.96 * 0.04).
    correct = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    values = stats.weighted_accuracy(correct, stats.document_resamples(100, seed=2))
    low, high = stats.interval(values)
    assert abs(low - 0.72) <= 0.02 and abs(high - 0.88) <= 0.02
    assert stats.interval(stats.weighted_accuracy(np.ones(100, bool),
                                                  stats.document_resamples(100))) == [1.0, 1.0]


def test_macro_f1_of_the_whole_sample_is_scikit_learns():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    ours = stats.macro_f1(true, predicted, 4)[0]
    assert ours == pytest.approx(f1_score(true, predicted, average="macro"))
    # per-document counts give what weighing every passage by its document's draws gives
    documents = rng.integers(0, 20, 200)
    resamples = stats.document_resamples(20, rounds=50, seed=4)
    per_passage = resamples[:, documents]
    for r in range(50):
        keep = per_passage[r]
        expected = f1_score(np.repeat(true, keep), np.repeat(predicted, keep), average="macro")
        assert stats.macro_f1(true, predicted, 4, documents, resamples)[r] == \
            pytest.approx(expected)


def test_mcnemar_stays_exact_on_thousands_of_disagreements():
    a = np.r_[np.ones(700, bool), np.zeros(600, bool)]
    assert stats.mcnemar_exact(a, ~a)["p"] == pytest.approx(0.0060158, abs=1e-6)  # scipy binomtest


def test_a_paired_difference_of_a_model_with_itself_is_zero_and_verdicts_need_both_tests():
    answers = {"correct": np.array([True, False, True, True]),
               "document_correct": np.array([True, False])}
    same = stats.paired_difference(answers, answers, np.array([0, 0, 1, 1]),
                                   stats.document_resamples(2))
    assert same["document_accuracy_ci"] == [0.0, 0.0] and same["mcnemar_documents"]["p"] == 1
    assert stats.verdict(same) == "no clear difference"
    sure = {"document_accuracy_ci": [0.05, 0.3], "mcnemar_documents": {"p": 0.01}}
    assert stats.verdict(sure) == "better"
    assert stats.verdict({**sure, "mcnemar_documents": {"p": 0.2}}) == "no clear difference"


# --- Delta on a tiny example worked out by hand -----------------------------------------

def test_burrows_and_cosine_delta_on_a_hand_computed_example():
    # Two training texts: author 0 "x x x y" (x 0.75, y 0.25), author 1 "x y y y".
    # Means 0.5, standard deviations (n - 1) 0.353553: z = +-0.707107.
    train = ["x, X x; y!", "x y y y"]
    delta = Delta("burrows", mfw=2).fit(train, [0, 1], authors=2)
    assert delta.vocabulary == ["x", "y"]  # a tie, broken alphabetically
    # "x x x x y": x 0.8, y 0.2, z = (0.848528, -0.848528)
    d = delta.distances(["x x x x y"])[0]
    assert d[0] == pytest.approx(0.141421, abs=1e-5)  # mean(|0.8485 - 0.7071| twice)
    assert d[1] == pytest.approx(1.555635, abs=1e-5)  # mean(|0.8485 + 0.7071| twice)
    cosine = Delta("cosine", mfw=2).fit(train, [0, 1], authors=2)
    assert cosine.distances(["x x x x y"])[0] == pytest.approx([0.0, 2.0], abs=1e-9)
    assert words("Don't stop-2 me") == ["don", "t", "stop", "me"]
    even = delta.log_probs(["x y"])[0]
    assert even == pytest.approx(np.log([0.5, 0.5]))  # equally far from both


def test_an_author_without_training_texts_is_never_the_nearest():
    delta = Delta("burrows", mfw=3).fit(["a b c", "a a b"], [0, 2], authors=3)
    d = delta.distances(["a b b"])[0]
    assert math.isinf(d[1]) and np.isfinite(d[[0, 2]]).all()
    assert np.exp(delta.log_probs(["a b b"])[0][1]) < 1e-12


def test_a_crossval_into_the_folder_of_another_plan_is_refused(crossvalidated, capsys):
    plan = (crossvalidated / "crossval-plan.json").read_text()
    config = json.loads(plan)["config"]
    other = crossvalidated.parent / "other.toml"
    other.write_text(config)
    assert main(["crossval", str(other), "--folds", "2", "--out", str(crossvalidated)]) == 2
    err = capsys.readouterr().err
    assert "holds a crossval of another plan" in err and "folds" in err
    assert (crossvalidated / "crossval-plan.json").read_text() == plan


def test_folds_all_tests_one_document_per_fold(tmp_path):
    from toolkit.attribution.crossval import parse_folds, plan_folds
    from toolkit.config import schema as config_module
    from toolkit.plugins import registry

    config = write_config(tmp_path / "cv.toml", write_corpus(tmp_path / "c.jsonl"))
    resolved = config_module.load(config, registry())
    components = config_module.build_components(resolved, registry())
    plan = plan_folds(resolved, components, parse_folds("all"), config)
    assert plan.folds == 9 and sorted(plan.fold_of) == list(range(9))
    assert plan.strangers == ["lonely-1"] and "lonely-1" not in plan.documents


def test_documents_with_the_same_name_or_too_short_to_test_are_refused(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    rows[1]["name"] = rows[0]["name"]  # two documents called "forward-1"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_config(tmp_path / "cv.toml", corpus)
    assert main(["crossval", config, "--folds", "3", "--out", str(tmp_path / "a")]) == 2
    assert "used more than once (e.g. 'forward-1')" in capsys.readouterr().err
    rows[1]["name"], rows[1]["text"] = "forward-2", "abc"  # no passage of 20 tokens
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["crossval", config, "--folds", "3", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "sequences.min_length" in err and "'forward-2'" in err
    assert not (tmp_path / "b" / "fold-1" / "model.keras").exists()


@pytest.mark.parametrize("members", ["[]", '["lstm", "lstm"]'])
def test_an_ensemble_needs_different_members(tmp_path, capsys, members):
    config = write_config(tmp_path / "cv.toml", write_corpus(tmp_path / "c.jsonl"))
    assert main(["train", config, "--run-dir", str(tmp_path / "r"),
                 "--set", f"ensemble.members={members}"]) == 2
    assert "ensemble.members" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
