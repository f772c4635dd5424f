"""Attribution: "who wrote this?" with a trained classifier or per-author language-model run.

A text is preprocessed as in training, cut into passages of the run's
``sequences.length`` tokens, and every passage is scored against every author:

- a ``classifier`` run gives ``log p(author | passage)`` from its softmax;
- an ``author-lms`` run gives ``log p(passage | author)``, the sum of the per-token
  log-probabilities under that author's head (lower cross-entropy, higher score).

Each passage's scores become probabilities through the run's calibration (fitted on
its validation split when training ended; see :mod:`toolkit.attribution.calibration`): per-author
offsets, a temperature, then a softmax. A text's probabilities are the mean of its
passages' log-probabilities, softmaxed again (a geometric mean of the passage
probabilities: as sure as a typical passage). When the top answer's log-odds are below
the calibration's threshold, the answer is ``unknown``: probably none of these authors.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.runs import rundir as runs
from toolkit.attribution.calibration import UNKNOWN, Calibration, log_softmax, pool, stacked
from toolkit.errors import ToolkitError
from toolkit.runs.rundir import Run
from toolkit.data.vocab import OOV, PAD


@dataclass
class Attribution:
    """The ranked authors of one text, and the answer: the top author, or ``unknown``."""

    input_name: str
    passages: int
    tokens: int
    unknown_tokens: int
    ranking: list[tuple[str, float]]  # (author, probability), most probable first
    answer: str = ""
    calibrated: bool = False

    def to_json(self) -> dict:
        return {"file": self.input_name, "answer": self.answer, "calibrated": self.calibrated,
                "passages": self.passages, "tokens": self.tokens,
                "unknown_tokens": self.unknown_tokens,
                "ranking": [{"author": a, "probability": p} for a, p in self.ranking]}


class Attributor:
    """A trained attribution run, ready to score passages and texts.

    The run's head scores passages (:meth:`Head.score_passages`) and its sequence
    builder cuts a text into passages as training passages were cut. With
    ``model = "ensemble"`` the LSTM's calibrated log-probabilities are stacked with the
    other members' (the n-grams, the Deltas: ``[ensemble] members``), as training or
    ``toolkit calibrate`` fitted them (``ensemble.pkl``)."""

    def __init__(self, run: Run, model: str = "lstm"):
        self.run = run
        self.head, self.builder = run.head, run.builder
        if not self.head.attributes:
            raise ToolkitError(f"{run.path} is a {run.config.head.use!r} run: it "
                               f"generates text and cannot attribute it; train a classifier "
                               f"or author-lms run (see docs/attribution.md)")
        if not run.labels:
            raise ToolkitError(f"{run.path} has no labels.json: it is not a finished "
                               f"attribution run; train it again")
        self.labels = run.labels
        self.calibration = Calibration.read(run.file(runs.CALIBRATION))
        self.ensemble = None
        if model == "ensemble":
            self.ensemble = load_ensemble(run)
            if self.calibration is None:
                raise ToolkitError(f"{run.path} has no {runs.CALIBRATION}, which the ensemble "
                                   f"was fitted with; run `toolkit calibrate {run.path}`")
        elif model != "lstm":
            raise ToolkitError(f"--model: expected \"lstm\" or \"ensemble\", received {model!r}")

    def passage_scores(self, passages: np.ndarray) -> np.ndarray:
        """Log-scores ``(passages, authors)`` for a matrix of right-padded passages of ids."""
        return self.head.score_passages(self.run.model, passages, self.builder.batch_size)

    def log_probs(self, passages: np.ndarray) -> np.ndarray:
        """Calibrated log-probabilities ``(passages, authors)`` (the softmax of the raw scores
        for a run trained before calibration existed)."""
        scores = self.passage_scores(passages)
        if self.calibration is None:
            return log_softmax(scores)
        log_probs = self.calibration.log_probs(scores, real_tokens(passages))
        if self.ensemble is not None:
            log_probs = ensemble_log_probs(self.run, self.ensemble, passages, log_probs)
        return log_probs

    def cut(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` as the builder's passages, keeping those the head can score."""
        passages = self.builder.passages(ids)
        return passages[(passages != PAD).sum(axis=1) >= self.head.min_tokens]

    def attribute_text(self, text: str, input_name: str) -> Attribution:
        """Rank the run's authors for one text, and answer (an author, or ``unknown``)."""
        tokens = self.run.preprocessor(text)
        if not tokens:
            raise ToolkitError(f"{input_name}: no tokens after preprocessing (is it empty?); "
                               f"give a text of at least a sentence")
        ids = self.run.vocab.encode(tokens)
        passages = self.cut(ids)
        if not len(passages):
            raise ToolkitError(f"{input_name}: {len(ids)} token(s) are too few to score; "
                               f"give a longer text")
        _, pooled = pool(self.log_probs(passages), [input_name] * len(passages))
        probabilities = np.exp(pooled[0])
        order = np.argsort(-probabilities, kind="stable")
        unknown = self.calibration is not None and self.calibration.is_unknown(pooled)[0]
        answer = UNKNOWN if unknown else self.labels[order[0]]
        return Attribution(input_name, len(passages), len(ids), int((ids == OOV).sum()),
                           [(self.labels[i], float(probabilities[i])) for i in order],
                           answer, self.calibration is not None)


def real_tokens(passages: np.ndarray) -> np.ndarray:
    """The number of real (not padding) tokens of each right-padded passage."""
    return (passages != PAD).sum(axis=1)


def passage_texts(run: Run, passages: np.ndarray) -> list[str]:
    """Right-padded passages of ids as text again (what the n-gram model reads)."""
    return [run.preprocessor.detokenize(run.vocab.decode(row[row != PAD])) for row in passages]


def calibrate(head, scores: np.ndarray, passages) -> Calibration:
    """The :class:`~toolkit.attribution.calibration.Calibration` of ``head``'s ``scores`` of labelled
    validation ``passages``."""
    return Calibration.fit(scores, passages.labels, head.normalise_scores,
                           real_tokens(passages.ids))


MEMBERS = ("lstm", "ngrams", "burrows-delta", "cosine-delta")


def read_ensemble(run: Run) -> dict | None:
    """The ensemble's fitted members and weights training (or ``toolkit calibrate``)
    wrote, or ``None`` for a run without them."""
    import pickle

    path = run.file(runs.ENSEMBLE)
    if not path.is_file():
        return None
    ensemble = pickle.loads(path.read_bytes())
    ensemble.setdefault("members", ["lstm", "ngrams"])  # written before the Deltas
    return ensemble


def member_log_probs(run: Run, ensemble: dict, member: str, passages: np.ndarray,
                     lstm: np.ndarray | None = None) -> np.ndarray:
    """One ensemble member's log-probabilities ``(passages, authors)`` of right-padded
    ``passages``; ``lstm`` is the calibrated LSTM's, which the caller has."""
    if member == "lstm":
        return lstm
    texts = passage_texts(run, passages)
    if member == "ngrams":
        from toolkit.attribution.ngrams import ngram_log_probs

        return ngram_log_probs(ensemble["ngram"], texts, len(ensemble["labels"]))
    if member in ("burrows-delta", "cosine-delta") and "delta" in ensemble:
        return ensemble["delta"][member.split("-")[0]].log_probs(texts)
    raise ToolkitError(f"{run.path}'s {runs.ENSEMBLE} has no {member!r} member; "
                       f"`toolkit calibrate {run.path}` fits it again")


def ensemble_log_probs(run: Run, ensemble: dict, passages: np.ndarray,
                       lstm: np.ndarray) -> np.ndarray:
    """The ensemble's log-probabilities: its members' stacked by their fitted weights."""
    parts = [member_log_probs(run, ensemble, member, passages, lstm)
             for member in ensemble["members"]]
    return stacked(parts, ensemble["weights"])


def load_ensemble(run: Run) -> dict:
    """:func:`read_ensemble`, refusing a run without one."""
    ensemble = read_ensemble(run)
    if ensemble is None:
        raise ToolkitError(f"{run.path} has no {runs.ENSEMBLE}: `toolkit calibrate "
                           f"{run.path}` fits the ensemble on the validation split and "
                           f"writes it (training does at its end); run that first")
    return ensemble


def read_text(name: str) -> str:
    """The text of a file, or of standard input for ``-``, with errors a user can act on."""
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolkitError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ToolkitError(f"{name}: is a directory; give text files") from None
    except PermissionError:
        raise ToolkitError(f"{name}: permission denied; cannot read it") from None
    except UnicodeDecodeError as err:
        raise ToolkitError(f"{name}: not UTF-8 text ({err.reason} at byte {err.start}); "
                           f"convert it to UTF-8 first") from None
    except OSError as err:
        raise ToolkitError(f"{name}: cannot be read ({err.strerror})") from None


def attribute_files(run_dir: str | Path, names: list[str],
                    model: str = "lstm") -> list[Attribution]:
    """Attribute each file (``-`` is standard input); every file is read before any is scored."""
    texts = [(name if name != "-" else "<stdin>", read_text(name)) for name in names]
    for input_name, text in texts:
        if not text.strip():
            raise ToolkitError(f"{input_name}: is empty; give a text to attribute")
    attributor = Attributor(Run.open(run_dir), model)
    return [attributor.attribute_text(text, input_name) for input_name, text in texts]
