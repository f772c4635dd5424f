"""Preprocessing: an ordered chain of stages from a document's text to its tokens.

Stages before the tokenizer map text to text (lowercase, normalisation); the
tokenizer maps text to tokens; stages after it map tokens to tokens (stop-word
removal). The chain is checked before any text is read.
"""

from __future__ import annotations

from typing import Sequence

from toolkit.errors import ConfigError
from toolkit.hookspecs import Kind, Stage


def check_chain(stages: Sequence[Stage], names: Sequence[str], source: str | None = None):
    """Refuse a chain whose stages do not fit one after the other or that never tokenizes."""
    current: Kind = "text"
    for i, (stage, name) in enumerate(zip(stages, names)):
        if stage.consumes != current:
            hint = ("put text stages before the tokenizer" if current == "tokens"
                    else "add a tokenizer stage (such as \"chars\") before it")
            raise ConfigError(f"preprocess.{i}", f"stage {name!r} works on {stage.consumes}, "
                                                 f"but it receives {current}; {hint}", source)
        current = stage.produces
    if current != "tokens":
        raise ConfigError("preprocess", "the chain never splits text into tokens; add a "
                                        "tokenizer stage such as { use = \"chars\" }", source)


class Preprocessor:
    """A checked chain of stages, applied in config order."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)
        self.tokenizer = next(s for s in self.stages if s.produces == "tokens"
                              and s.consumes == "text")

    def __call__(self, text: str) -> Sequence[str]:
        """The tokens of ``text``: a list, or a ``str`` when every token is one character
        (a str is a sequence of one-character tokens, and far cheaper to count and encode)."""
        value = text
        for stage in self.stages:
            if stage.consumes == "tokens" and isinstance(value, str):
                value = list(value)  # token stages always receive a list
            value = stage(value)
        return value if isinstance(value, str) else list(value)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self.tokenizer.detokenize(tokens)

    @property
    def unit(self) -> str:
        """What the tokens are: ``"characters"``, ``"words"`` (the tokenizer's ``unit``)."""
        return self.tokenizer.unit
