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

import numpy as np

from toolkit.errors import ToolkitError
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
    """A trained attribution run, ready to score passages and texts.

    The run's head scores passages (:meth:`Head.score_passages`) and its sequence
    builder cuts a text into passages as training passages were cut."""

    def __init__(self, run: Run):
        self.run = run
        self.head, self.builder = run.head, run.builder
        if not self.head.attributes:
            raise ToolkitError(f"{run.path} is a {run.config['head']['use']!r} run: it "
                               f"generates text and cannot attribute it; train a classifier "
                               f"or author-lms run (see docs/attribution.md)")
        if not run.labels:
            raise ToolkitError(f"{run.path} has no labels.json: it is not a finished "
                               f"attribution run; train it again")
        self.labels = run.labels

    def passage_scores(self, passages: np.ndarray) -> np.ndarray:
        """Log-scores ``(passages, authors)`` for a matrix of right-padded passages of ids."""
        return self.head.score_passages(self.run.model, passages, self.builder.batch_size)

    def cut(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` as the builder's passages, keeping those the head can score."""
        passages = self.builder.passages(ids)
        return passages[(passages != PAD).sum(axis=1) >= self.head.min_tokens]

    def attribute_text(self, text: str, source: str) -> Attribution:
        """Rank the run's authors for one text."""
        tokens = self.run.preprocessor(text)
        if not tokens:
            raise ToolkitError(f"{source}: no tokens after preprocessing (is it empty?); "
                               f"give a text of at least a sentence")
        ids = self.run.vocab.encode(tokens)
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
    attributor = Attributor(Run.open(run_dir))
    return [attributor.attribute_text(text, source) for source, text in texts]
