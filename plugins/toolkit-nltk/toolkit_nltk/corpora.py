"""NLTK plain-text corpora (gutenberg, webtext, ...) as toolkit corpora."""

from __future__ import annotations

import fnmatch
import re
from typing import Iterator

from toolkit.hookspecs import Document
from toolkit_nltk.data import require


class NLTKCorpus:
    """Any NLTK plain-text corpus by name, one document per file id.

    ``include`` keeps file ids matching any of its glob patterns (``["austen-*"]``).
    Labels come from the file id: ``label = "prefix"`` takes the text before the first
    ``-`` (``austen-emma.txt`` -> ``austen``); ``"fileid"`` takes the whole id; a
    regular expression with one group takes that group; ``"none"`` leaves documents
    unlabelled.
    """

    def __init__(self, name: str = "gutenberg", include: list[str] = (),
                 label: str = "prefix", download: bool = True):
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"name: expected an NLTK corpus name such as \"gutenberg\", "
                             f"received {name!r}")
        self.name = name
        self.include = list(include)
        self.label = label
        self.download = download
        if label not in ("prefix", "fileid", "none"):
            try:
                pattern = re.compile(label)
            except re.error as err:
                raise ValueError(f"label: not a regular expression ({err}): {label!r}") from None
            if pattern.groups != 1:
                raise ValueError(f"label: a pattern needs exactly one group, received {label!r}")

    def reader(self):
        require(f"corpora/{self.name}", self.name, self.download)
        import nltk.corpus

        return getattr(nltk.corpus, self.name)

    def fileids(self) -> list[str]:
        ids = self.reader().fileids()
        if self.include:
            ids = [i for i in ids if any(fnmatch.fnmatch(i, p) for p in self.include)]
        return ids

    def label_of(self, fileid: str) -> str | None:
        if self.label == "none":
            return None
        if self.label == "fileid":
            return fileid
        if self.label == "prefix":
            return fileid.split("-", 1)[0].removesuffix(".txt")
        match = re.search(self.label, fileid)
        return match.group(1) if match else None

    def documents(self) -> Iterator[Document]:
        reader = self.reader()
        for fileid in self.fileids():
            yield Document(reader.raw(fileid), fileid, self.label_of(fileid))

    def describe(self) -> str:
        return f"nltk:{self.name}" + (f" {self.include}" if self.include else "")
