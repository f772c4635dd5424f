"""What a head is: the output layers on top of the core, with their loss and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras


@dataclass
class HeadContext:
    """What a head may need to build its layers.

    ``labels`` are the run's authors (class ``i`` is ``labels[i]``; empty for an
    unlabelled corpus); ``inputs`` are the model's inputs by name (``"tokens"`` and
    any the head asked for in :meth:`Head.inputs`).
    """

    vocab_size: int
    labels: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)


class Head:
    """Base for heads. ``build`` maps the core's output sequence to the model's outputs.

    ``target`` says what the sequence builder must give as targets: ``"next-token"``
    (a token id at every position), ``"label"`` (one author index per sequence), or
    ``"next-token-by-label"`` (next tokens, with the author as a second input named
    ``"author"``). ``monitor`` is the logged value that picks the best epoch (lower
    is better).
    """

    target = "next-token"
    monitor = "val_perplexity"

    def inputs(self, batch_size: int | None) -> dict:
        """Extra model inputs by name, beside ``"tokens"`` (none by default)."""
        return {}

    def build(self, features, context: HeadContext):
        raise NotImplementedError

    def loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def metrics(self) -> list:
        """Metrics compiled as ``weighted_metrics``: they receive the sample weights."""
        return []

    def summarize(self, results: dict) -> dict:
        """The run's validation figures from ``model.evaluate``'s results."""
        if "perplexity" not in results:
            return {"loss": round(results["loss"], 5)}
        nats = math.log(results["perplexity"])
        return {"nats_per_token": round(nats, 5), "bits_per_token": round(nats / math.log(2), 5),
                "perplexity": round(results["perplexity"], 4)}
