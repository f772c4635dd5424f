"""Built-in corpora: a text file, a directory of text files, inline text, tiny-shakespeare."""

from corpora import InlineText, TextDirectory, TextFile, TinyShakespeare
from toolkit.hookspecs import hookimpl


@hookimpl
def register_corpora(register):
    register("text", TextFile)
    register("directory", TextDirectory)
    register("inline", InlineText)
    register("tinyshakespeare", TinyShakespeare)
