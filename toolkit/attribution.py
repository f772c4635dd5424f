"""Attribution: "who wrote this?" with a trained classifier or per-author language-model run.

A text is preprocessed as in training, cut into passages of the run's
``sequences.length`` tokens, and every passage is scored against every author:

- a ``classifier`` run gives ``log p(author | passage)`` from its softmax;
- an ``author-lms`` run gives ``log p(passage | author)``, the sum of the per-token
  log-probabilities under that author's head (lower cross-entropy, higher score).

A text's score for an author is the sum over its passages; the probabilities are
the softmax of those sums (each passage counted as independent evidence, authors
equally likely a priori).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import ops

from toolkit import config as config_module
from toolkit.errors import ToolkitError
from toolkit.plugins import registry
from toolkit.preprocess import Preprocessor
from toolkit.runs import Run
from toolkit.vocab import OOV, PAD


@dataclass
class Attribution:
    """The ranked authors of one text."""

    source: str
    passages: int
    tokens: int
    unknown_tokens: int
    ranking: list[tuple[str, float]]  # (author, probability), most probable first

    def to_json(self) -> dict:
        return {"file": self.source, "passages": self.passages, "tokens": self.tokens,
                "unknown_tokens": self.unknown_tokens,
                "ranking": [{"author": a, "probability": p} for a, p in self.ranking]}


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Attributor:
    """A trained attribution run, ready to score passages and texts."""

    def __init__(self, run: Run, resolved: dict | None = None, components=None):
        self.run = run.require()
        resolved = resolved or run.config()
        self.components = components or config_module.build_components(
            resolved, registry(), source=str(run.file("config.toml")))
        self.head = self.components.head
        if self.head.target == "next-token":
            raise ToolkitError(f"{run.path} is a {resolved['head']['use']!r} run: it generates "
                               f"text and cannot attribute it; train a classifier or "
                               f"author-lms run (see docs/attribution.md)")
        self.labels = run.labels()
        if not self.labels:
            raise ToolkitError(f"{run.path} has no labels.json: it is not a finished "
                               f"attribution run; train it again")
        self.vocab = run.vocab()
        self.preprocessor = Preprocessor(self.components.stages)
        self.length = self.components.sequences.length
        self.min_length = getattr(self.components.sequences, "min_length", 1)
        self.batch_size = self.components.sequences.batch_size
        self.model = run.load_model()
        if self.head.target == "next-token-by-label":
            self.lms = self.model.get_layer("head_author_lms")
            self.features = keras.Model(self.model.get_layer("tokens").output,
                                        self.lms.input[0])

    def passage_scores(self, passages: np.ndarray) -> np.ndarray:
        """Log-scores ``(passages, authors)`` for a matrix of right-padded passages of ids."""
        if self.head.target == "label":
            probabilities = self.model.predict(passages, batch_size=self.batch_size, verbose=0)
            return np.log(np.maximum(probabilities, 1e-12))
        scores = []
        for start in range(0, len(passages), self.batch_size):
            batch = passages[start:start + self.batch_size]
            x, y = batch[:, :-1], batch[:, 1:]
            weights = ops.cast(y != PAD, "float32")
            features = self.features(x, training=False)
            scores.append(np.asarray(self.lms.log_likelihoods(features, y, weights)))
        return np.concatenate(scores)

    def cut(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` as right-padded passages of the run's length.

        A last piece shorter than the run's ``min_length`` is dropped (training never
        saw one), unless it is the whole text."""
        count = max(1, -(-len(ids) // self.length))
        if count > 1 and len(ids) - (count - 1) * self.length < self.min_length:
            count -= 1
        passages = np.zeros((count, self.length), np.int32)
        for i in range(count):
            piece = ids[i * self.length:(i + 1) * self.length]
            passages[i, :len(piece)] = piece
        if self.head.target != "label":
            passages = passages[(passages != PAD).sum(axis=1) >= 2]  # a prediction needs 2
        return passages

    def attribute_text(self, text: str, source: str) -> Attribution:
        """Rank the run's authors for one text."""
        tokens = self.preprocessor(text)
        if not tokens:
            raise ToolkitError(f"{source}: no tokens after preprocessing (is it empty?); "
                               f"give a text of at least a sentence")
        ids = self.vocab.encode(tokens)
        passages = self.cut(ids)
        if not len(passages):
            raise ToolkitError(f"{source}: {len(ids)} token(s) are too few to score; "
                               f"give a longer text")
        total = self.passage_scores(passages).sum(axis=0)
        probabilities = softmax_rows(total[None, :])[0]
        order = np.argsort(-probabilities, kind="stable")
        return Attribution(source, len(passages), len(ids), int((ids == OOV).sum()),
                           [(self.labels[i], float(probabilities[i])) for i in order])


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


def attribute_files(run_dir: str | Path, names: list[str]) -> list[Attribution]:
    """Attribute each file (``-`` is standard input); every file is read before any is scored."""
    texts = [(name if name != "-" else "<stdin>", read_text(name)) for name in names]
    for source, text in texts:
        if not text.strip():
            raise ToolkitError(f"{source}: is empty; give a text to attribute")
    attributor = Attributor(Run(run_dir))
    return [attributor.attribute_text(text, source) for source, text in texts]
