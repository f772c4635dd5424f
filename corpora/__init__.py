"""Corpus definitions: what a corpus is and how its documents and labels are read.

A corpus is anything with a ``documents()`` method that yields :class:`Document`
objects. The toolkit's built-in corpus plugins (``toolkit.default_plugins.corpora``)
register the readers defined here by name.
"""

from corpora.base import Corpus, Document
from corpora.files import CsvFile, InlineText, JsonLines, TextDirectory, TextFile
from corpora.tinyshakespeare import TinyShakespeare

__all__ = ["Corpus", "CsvFile", "Document", "InlineText", "JsonLines", "TextDirectory", "TextFile", "TinyShakespeare"]
