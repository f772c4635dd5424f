"""Built-in preprocessing stages: text clean-up (Unicode, whitespace, Gutenberg
boilerplate, lowercase) and the character tokenizer. Word-level stages come from
the NLTK plugin package (``plugins/toolkit-nltk``)."""

import re
import unicodedata
from typing import Literal

from toolkit.hookspecs import hookimpl
from toolkit.config.params import NonNegativeInt
from toolkit.hookspecs import Stage


class UnicodeNormalize(Stage):
    """Unicode normalisation (NFC by default; NFKC also folds ligatures and full-width forms)."""

    def __init__(self, form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFC"):
        self.form = form

    def __call__(self, text: str) -> str:
        return unicodedata.normalize(self.form, text)


class Whitespace(Stage):
    """Whitespace clean-up: CRLF to LF, runs of spaces and tabs to one space, no trailing
    spaces, and at most ``max_blank_lines`` blank lines in a row."""

    def __init__(self, max_blank_lines: NonNegativeInt = 1):
        self.max_blank_lines = max_blank_lines
        self.blank_runs = re.compile(r"\n{%d,}" % (max_blank_lines + 2))

    # A run of spaces and tabs becomes one space, and spaces around a line break go. The
    # patterns skip what is already so (a single space, a bare line break): most of a
    # text, which ``[ \t]+`` and `` *\n *`` would each replace by itself.
    SPACES = re.compile(r"[ \t\f\v\u00a0]{2,}|[\t\f\v\u00a0]")
    AROUND_BREAKS = re.compile(r" +\n *|\n +")

    def __call__(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = self.SPACES.sub(" ", text)
        text = self.AROUND_BREAKS.sub("\n", text)
        return self.blank_runs.sub("\n" * (self.max_blank_lines + 1), text)


GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$",
                             re.IGNORECASE | re.MULTILINE)
GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$",
                           re.IGNORECASE | re.MULTILINE)


class GutenbergStrip(Stage):
    """Keep only the text between Project Gutenberg's ``*** START OF ...`` and
    ``*** END OF ...`` lines; text without those markers is left as it is."""

    def __call__(self, text: str) -> str:
        start = GUTENBERG_START.search(text)
        if start:
            text = text[start.end():]
        end = GUTENBERG_END.search(text)
        if end:
            text = text[:end.start()]
        return text.strip("\n") + "\n" if (start or end) else text


class Lowercase(Stage):
    """Lowercase the text (Unicode-aware ``str.lower``)."""

    piecewise = True

    def __call__(self, text: str) -> str:
        return text.lower()


class Characters(Stage):
    """Split text into characters: every character, spaces and newlines included, is a token."""

    piecewise = True

    produces = "tokens"
    unit = "characters"

    def __call__(self, text: str) -> str:
        return text  # a str is already the sequence of its characters

    def detokenize(self, tokens) -> str:
        return "".join(tokens)


@hookimpl
def register_preprocessors(register):
    register("unicode", UnicodeNormalize)
    register("whitespace", Whitespace)
    register("gutenberg-strip", GutenbergStrip)
    register("lowercase", Lowercase)
    register("chars", Characters)
