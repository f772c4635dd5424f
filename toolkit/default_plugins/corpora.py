"""Built-in corpora: a text file, a directory of text files, JSON Lines and CSV
files with text and label fields, inline text, tiny-shakespeare."""

from corpora import CsvFile, InlineText, JsonLines, TextDirectory, TextFile, TinyShakespeare
from toolkit.hookspecs import hookimpl


@hookimpl
def register_corpora(register):
    register("text", TextFile)
    register("directory", TextDirectory)
    register("inline", InlineText)
    register("jsonl", JsonLines)
    register("csv", CsvFile)
    register("tinyshakespeare", TinyShakespeare)
