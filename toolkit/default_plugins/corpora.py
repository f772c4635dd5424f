"""Built-in corpora: a text file, a directory of text files, tiny-shakespeare."""

from corpora import TextDirectory, TextFile, TinyShakespeare
from toolkit.hookspecs import hookimpl


@hookimpl
def register_corpora(register):
    register("text", TextFile)
    register("directory", TextDirectory)
    register("tinyshakespeare", TinyShakespeare)
