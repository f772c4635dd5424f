"""Built-in corpora: a text file, a directory of text files, JSON Lines and CSV files
with text and label fields, inline text, tiny-shakespeare.

Each reader is a :class:`toolkit.hookspecs.Corpus`; the corpus cards in the
repository's ``corpora/`` folder say where each public corpus comes from, its
checksum, licence and label rule.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import Iterator

from toolkit.errors import ToolkitError
from toolkit.hookspecs import Document, hookimpl
from toolkit.data.paths import USER_CACHE


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


def read_lines(path: Path, encoding: str, newline: str | None = None):
    """The lines of a text file, read as they are needed (a file of records may be bigger
    than memory); errors as :func:`read_text` gives them."""
    try:
        with open(path, encoding=encoding, newline=newline) as file:
            yield from file
    except FileNotFoundError:
        raise ToolkitError(f"corpus file not found: {path}") from None
    except UnicodeDecodeError:
        raise ToolkitError(
            f"corpus file {path} is not valid {encoding}; set corpus.encoding to the "
            f"file's encoding, e.g. \"latin-1\"") from None
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


def path_matches(relative: str, pattern: str) -> bool:
    """Whether a file's path relative to the corpus directory (``austen/emma.txt``)
    matches a corpus ``pattern``. A pattern without ``/`` matches the file name at any
    depth (``*.txt``). One with ``/`` matches the whole relative path, part by part:
    ``*`` and ``?`` stay within one folder name and ``**`` stands for any number of
    folders, none included (``*/*.txt``, ``austen/*.txt``, ``**/*.txt``)."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], pattern)
    return _parts_match(relative.split("/"), pattern.strip("/").split("/"))


def _parts_match(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_parts_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) \
        and _parts_match(parts[1:], pattern[1:])


class TextDirectory:
    """Every file matching ``pattern`` under a directory, one document each
    (:func:`path_matches` says how patterns match).

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
        files, seen = [], set()
        # os.walk follows symlinked folders (Path.rglob does not); each real folder once.
        for root, folders, names in os.walk(self.path, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:
                folders[:] = []
                continue
            seen.add(real)
            folder = Path(root).relative_to(self.path)
            files += [Path(root) / n for n in names
                      if path_matches((folder / n).as_posix(), self.pattern)
                      and (Path(root) / n).is_file()]
        files.sort()
        if not files:
            raise ToolkitError(
                f"no files matching {self.pattern!r} under {self.path} (corpus.pattern: a "
                f"pattern with a / matches paths relative to corpus.path, such as "
                f"\"*/*.txt\" or \"**/*.txt\"; one without matches file names at any depth)")
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


def _record_documents(path: Path, records, text_field: str, label_field: str | None,
                      name_field: str | None, what: str) -> Iterator[Document]:
    """Documents from ``(line_number, dict)`` records, refusing records without text."""
    for line, record in records:
        text = record.get(text_field)
        if not isinstance(text, str):
            raise ToolkitError(
                f"{path}:{line}: {what} record has no text in field {text_field!r} "
                f"(fields: {', '.join(map(str, record)) or 'none'}); set corpus.text_field")
        label = record.get(label_field) if label_field else None
        name = record.get(name_field) if name_field else None
        yield Document(text, str(name) if name not in (None, "") else f"{path.name}:{line}",
                       str(label) if label not in (None, "") else None)


class JsonLines:
    """A JSON Lines file: one JSON object per line, with a text field and optionally a label."""

    def __init__(self, path: str, text_field: str = "text", label_field: str = "label",
                 name_field: str = "", encoding: str = "utf-8"):
        self.path = Path(path).expanduser()
        self.text_field, self.label_field, self.name_field = text_field, label_field, name_field
        self.encoding = encoding

    def records(self):
        import json

        for line, raw in enumerate(read_lines(self.path, self.encoding), 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ToolkitError(f"{self.path}:{line}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ToolkitError(f"{self.path}:{line}: expected a JSON object, "
                                   f"received {type(record).__name__}")
            yield line, record

    def documents(self) -> Iterator[Document]:
        yield from _record_documents(self.path, self.records(), self.text_field,
                                     self.label_field or None, self.name_field or None, "JSONL")

    def describe(self) -> str:
        return f"jsonl {self.path}"


class CsvFile:
    """A CSV file with a header row: a text column and optionally a label column."""

    def __init__(self, path: str, text_field: str = "text", label_field: str = "label",
                 name_field: str = "", delimiter: str = ",", encoding: str = "utf-8"):
        if len(delimiter) != 1:
            raise ValueError(f"delimiter: expected one character, received {delimiter!r}")
        self.path = Path(path).expanduser()
        self.text_field, self.label_field, self.name_field = text_field, label_field, name_field
        self.delimiter, self.encoding = delimiter, encoding

    def documents(self) -> Iterator[Document]:
        import csv

        reader = csv.DictReader(read_lines(self.path, self.encoding, newline=""),
                                delimiter=self.delimiter)
        records = ((reader.line_num, row) for row in reader)
        yield from _record_documents(self.path, records, self.text_field,
                                     self.label_field or None, self.name_field or None, "CSV")

    def describe(self) -> str:
        return f"csv {self.path}"


# --- tiny-shakespeare (Karpathy's char-rnn corpus): 1,115,394 characters, 65 distinct ---

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
RELATIVE_PATH = Path("tinyshakespeare") / "input.txt"


def data_dir() -> Path:
    """The toolkit's data directory: ``$TOOLKIT_DATA``, else the user cache folder."""
    return Path(os.environ.get("TOOLKIT_DATA", USER_CACHE)).expanduser()


def download_verified(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` to ``target`` atomically, refusing content whose SHA-256 differs."""
    import hashlib
    import tempfile
    import urllib.request

    print(f"Downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=60) as response:
        content = response.read()
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise ValueError(f"the download's SHA-256 is {digest}, expected {sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as part:
        part.write(content)
    os.replace(part.name, target)


class TinyShakespeare:
    """Reads ``<data dir>/tinyshakespeare/input.txt``, downloading it once when missing."""

    def __init__(self, download: bool = True):
        self.download = download

    def path(self) -> Path:
        local = data_dir() / RELATIVE_PATH
        if local.is_file():
            return local
        if not self.download:
            raise ToolkitError(
                f"tiny-shakespeare not found at {local}; set TOOLKIT_DATA to a folder that "
                f"holds {RELATIVE_PATH}, or set corpus.download = true"
            )
        try:
            download_verified(URL, local, SHA256)
        except Exception as err:  # network errors come in many types
            raise ToolkitError(
                f"tiny-shakespeare is not at {local} and could not be downloaded from {URL} "
                f"({type(err).__name__}: {err}). Offline, put input.txt at {local} or point "
                f"TOOLKIT_DATA at a folder that holds {RELATIVE_PATH}."
            ) from None
        return local

    def documents(self) -> Iterator[Document]:
        yield Document(read_text(self.path(), "utf-8"), "tinyshakespeare", None)

    def describe(self) -> str:
        return "tinyshakespeare"


@hookimpl
def register_corpora(register):
    register("text", TextFile)
    register("directory", TextDirectory)
    register("inline", InlineText)
    register("jsonl", JsonLines)
    register("csv", CsvFile)
    register("tinyshakespeare", TinyShakespeare)
