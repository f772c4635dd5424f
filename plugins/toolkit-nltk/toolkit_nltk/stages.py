"""Word-level preprocessing stages built on NLTK."""

from __future__ import annotations

import re
import unicodedata
from itertools import filterfalse
from typing import Literal, Sequence


from toolkit.hookspecs import Stage
from toolkit_nltk.data import require

PARAGRAPH = "\n"
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


class NLTKWords(Stage):
    """Split text into words and punctuation with NLTK's NLTKWordTokenizer (no punkt data).

    Its rules run through :class:`~toolkit_nltk.fast_words.FastWordTokenizer`, which gives
    NLTK's tokens in about a third of the time.

    Paragraphs (text separated by blank lines) are tokenized one by one and joined by
    a ``"\\n"`` token, so generated text keeps its paragraph breaks. ``lowercase``
    lowercases every token.
    """

    produces = "tokens"
    unit = "words"

    def __init__(self, lowercase: bool = False, paragraphs: bool = True):
        self.lowercase = lowercase
        self.paragraphs = paragraphs
        # Paragraphs are tokenized one by one, so a document may be cut between them.
        self.piecewise = paragraphs
        self.between_pieces = (PARAGRAPH,)
        # NLTK is imported when a stage is made, not when the plugin loads (`toolkit --help`)
        from nltk.tokenize.treebank import TreebankWordDetokenizer

        from toolkit_nltk.fast_words import FastWordTokenizer

        self.tokenizer = FastWordTokenizer()
        self.detokenizer = TreebankWordDetokenizer()

    def __call__(self, text: str) -> list[str]:
        blocks = PARAGRAPH_BREAK.split(text) if self.paragraphs else [text]
        tokens: list[str] = []
        for block in blocks:
            words = self.tokenizer.tokenize(block)
            if not words:
                continue
            if tokens:
                tokens.append(PARAGRAPH)
            tokens.extend(words)
        return [t.lower() for t in tokens] if self.lowercase else tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        paragraphs, current = [], []
        for token in tokens:
            if token == PARAGRAPH:
                paragraphs.append(current)
                current = []
            else:
                current.append(token)
        paragraphs.append(current)
        return "\n\n".join(self.detokenizer.detokenize(p) for p in paragraphs)


class StopWords(Stage):
    """Remove NLTK's stop words for ``language`` (case-insensitive), plus ``extra``, minus ``keep``."""

    consumes = produces = "tokens"
    piecewise = True

    def __init__(self, language: str = "english", extra: list[str] = (), keep: list[str] = (),
                 download: bool = True):
        require("corpora/stopwords", "stopwords", download)
        from nltk.corpus import stopwords

        if language not in stopwords.fileids():
            raise ValueError(f"language: NLTK has no stop words for {language!r}; "
                             f"available: {', '.join(stopwords.fileids())}")
        words = set(stopwords.words(language)) | {w.lower() for w in extra}
        self.stopwords = frozenset(words - {w.lower() for w in keep})

    def __call__(self, tokens: list[str]) -> list[str]:
        # Decided once per distinct token, then filtered by set lookups at C speed.
        dropped = {t for t in set(tokens) if t.lower() in self.stopwords}
        return list(filterfalse(dropped.__contains__, tokens))


def is_punctuation(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") or c in "`´$%&*+<=>^|~" for c in token)


class Punctuation(Stage):
    """Remove tokens made only of punctuation (quotes, dashes, brackets, ``...``)."""

    consumes = produces = "tokens"
    piecewise = True

    def __call__(self, tokens: list[str]) -> list[str]:
        return [t for t in tokens if not is_punctuation(t)]


class Stem(Stage):
    """Reduce words to their stems with NLTK's Porter or Snowball stemmer (no data needed)."""

    consumes = produces = "tokens"
    piecewise = True

    def __init__(self, algorithm: Literal["porter", "snowball"] = "porter",
                 language: str = "english"):
        from nltk.stem import PorterStemmer, SnowballStemmer

        if algorithm == "porter":
            self.stemmer = PorterStemmer()
        else:
            if language not in SnowballStemmer.languages:
                raise ValueError(f"language: no Snowball stemmer for {language!r}; available: "
                                 f"{', '.join(SnowballStemmer.languages)}")
            self.stemmer = SnowballStemmer(language)

    def __call__(self, tokens: list[str]) -> list[str]:
        stem = self.stemmer.stem
        return [t if t == PARAGRAPH else stem(t) for t in tokens]
