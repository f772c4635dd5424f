"""Plain-text corpora read from the local file system."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from corpora.base import Document
from toolkit.errors import ToolkitError


def read_text(path: Path, encoding: str) -> str:
    """Read one text file, turning OS and decoding errors into actionable messages."""
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise ToolkitError(f"corpus file not found: {path}") from None
    except UnicodeDecodeError as err:
        raise ToolkitError(
            f"corpus file {path} is not valid {encoding} (byte {err.start}); "
            f"set corpus.encoding to the file's encoding, e.g. \"latin-1\""
        ) from None
    except OSError as err:
        raise ToolkitError(f"cannot read corpus file {path}: {err.strerror}") from None


class TextFile:
    """A single text file; one document, optionally labelled."""

    def __init__(self, path: str, label: str | None = None, encoding: str = "utf-8"):
        self.path = Path(path).expanduser()
        self.label = label
        self.encoding = encoding

    def documents(self) -> Iterator[Document]:
        yield Document(read_text(self.path, self.encoding), self.path.name, self.label)

    def describe(self) -> str:
        return f"file {self.path}"


class TextDirectory:
    """Every file matching ``pattern`` under a directory, one document each.

    With ``label_from = "folder"`` the label is the name of the file's parent folder
    relative to the directory (``authors/austen/emma.txt`` -> ``austen``); with
    ``"none"`` documents are unlabelled.
    """

    def __init__(self, path: str, pattern: str = "*.txt", label_from: str = "none",
                 encoding: str = "utf-8"):
        self.path = Path(path).expanduser()
        self.pattern = pattern
        self.label_from = label_from
        self.encoding = encoding

    def files(self) -> list[Path]:
        if not self.path.is_dir():
            raise ToolkitError(f"corpus directory not found: {self.path}")
        files = sorted(p for p in self.path.rglob(self.pattern) if p.is_file())
        if not files:
            raise ToolkitError(f"no files matching {self.pattern!r} under {self.path}")
        return files

    def documents(self) -> Iterator[Document]:
        for file in self.files():
            label = None
            if self.label_from == "folder":
                parent = file.parent.relative_to(self.path)
                label = parent.parts[0] if parent.parts else None
            name = str(file.relative_to(self.path))
            yield Document(read_text(file, self.encoding), name, label)

    def describe(self) -> str:
        return f"directory {self.path} ({self.pattern})"


class InlineText:
    """Text written in the config itself (``text = "..."``): for demos and tests."""

    def __init__(self, text: str, label: str | None = None):
        if not text:
            raise ValueError("text: expected a non-empty string")
        self.text = text
        self.label = label

    def documents(self) -> Iterator[Document]:
        yield Document(self.text, "inline", self.label)

    def describe(self) -> str:
        return f"inline text ({len(self.text)} characters)"
