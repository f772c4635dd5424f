"""What a corpus is: an iterable of labelled documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol


@dataclass(frozen=True)
class Document:
    """One text of a corpus.

    ``label`` is the author (or any class) the text belongs to, ``None`` when the
    corpus is unlabelled; ``name`` identifies the document in messages and splits.
    """

    text: str
    name: str
    label: str | None = None


class Corpus(Protocol):
    """A source of documents. ``documents()`` may be called more than once."""

    def documents(self) -> Iterator[Document]: ...

    def describe(self) -> str:
        """A short human-readable description (used in messages)."""
        ...
