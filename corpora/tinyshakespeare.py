"""Tiny-shakespeare (Karpathy's char-rnn corpus): 1,115,394 characters, 65 distinct."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from corpora.base import Document
from corpora.files import read_text
from toolkit.errors import ToolkitError
from toolkit.paths import USER_CACHE

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
RELATIVE_PATH = Path("tinyshakespeare") / "input.txt"


def data_dir() -> Path:
    """The toolkit's data directory: ``$TOOLKIT_DATA``, else the user cache folder."""
    return Path(os.environ.get("TOOLKIT_DATA", USER_CACHE)).expanduser()


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
        import keras

        try:
            fetched = keras.utils.get_file(
                fname="input.txt", origin=URL, file_hash=SHA256, hash_algorithm="sha256",
                cache_dir=str(data_dir()), cache_subdir="tinyshakespeare",
            )
        except Exception as err:  # network errors come in many types
            raise ToolkitError(
                f"tiny-shakespeare is not at {local} and could not be downloaded from {URL} "
                f"({type(err).__name__}: {err}). Offline, put input.txt at {local} or point "
                f"TOOLKIT_DATA at a folder that holds {RELATIVE_PATH}."
            ) from None
        return Path(fetched)

    def documents(self) -> Iterator[Document]:
        yield Document(read_text(self.path(), "utf-8"), "tinyshakespeare", None)

    def describe(self) -> str:
        return "tinyshakespeare"
