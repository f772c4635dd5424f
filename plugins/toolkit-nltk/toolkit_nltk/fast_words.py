"""NLTK's word tokenizer, with the same rules run in a fifth of the time.

``NLTKWordTokenizer.tokenize`` applies 33 regular-expression substitutions to the text,
one after the other, each a scan of the whole text. Most of them cannot match most
paragraphs: ``--`` needs two dashes, the contraction rules need ``cannot`` or ``'tis``.
Here a rule whose match needs a substring is skipped when the text holds none of its
substrings, an ``in`` test at C speed instead of a regex scan. A rule anchored at the
end (``...\\s*$``) runs only on the few characters where its match can start, and the
rule that collapses whitespace runs as ``str.split`` and ``join``. The rules themselves are
NLTK's own compiled patterns (the ``regex`` engine, without ``nltk.redos``'s per-call
timeout wrapper: these are fixed patterns, not a caller's), read from its class and run
in the order of its ``tokenize``; a pattern this module does not know runs unguarded.
The one difference: a paragraph on which a rule would run past ``nltk.redos``'s time
limit (seconds, for megabytes of text without a blank line) is tokenized here where
NLTK raises ``TimeoutError``.

``tests/test_nltk_plugin.py`` checks the tokens against ``NLTKWordTokenizer`` on
paragraphs of NLTK's Gutenberg selection and inaugural addresses, on generated text,
and on every letter that a case-insensitive match treats as an ASCII one.
"""

from __future__ import annotations

import re

# Rules known by their exact pattern text -> substrings of which a match needs one.
# The contraction rules get theirs from their own text (see ``contraction_literal``).
NEEDS = {
    "([«“‘„]|[`]+)": tuple("«“‘„`"),
    r"^\"": ('"',),
    r"(``)": ("``",),
    r"([ \(\[{<])(\"|\'{2})": ('"', "''"),
    r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)": ("'",),
    r"([:,])([^\d])": (":", ","),
    r"\.{2,}": ("..",),
    r"[;@#$%&]": tuple(";@#$%&"),
    r"[\u2012-\u2015]": tuple("\u2012\u2013\u2014\u2015"),
    r"[?!]": ("?", "!"),
    r"([^'])' ": ("' ",),
    r"[*]": ("*",),
    r"[\]\[\(\)\{\}\<\>]": tuple("[](){}<>"),
    r"--": ("--",),
    "([»”’])": tuple("»”’"),
    "''": ("''",),
    '"': ('"',),
    r"([^' ])('[sS]|'[mM]|'[dD]|') ": ("' ", "'s ", "'S ", "'m ", "'M ", "'d ", "'D "),
    r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": ("'ll ", "'LL ", "'re ", "'RE ", "'ve ",
                                                   "'VE ", "n't ", "N'T "),
}

# Whitespace by either engine's ``\s`` or ``str.isspace`` (which adds \x1c-\x1f).
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
CLOSING = "]})>\"'»”’ "


def before_a_final_period(text: str) -> int | None:
    """Where a match of ``([^\.])(\.)([\]\)}>"\']*)\s*$`` (and its variant with more
    closing marks) can start: the character before the last period that only closing
    brackets, quotes and whitespace follow; ``None`` when there is no such period."""
    period = len(text.rstrip(CLOSING + WHITESPACE)) - 1
    return period - 1 if period > 0 and text[period] == "." else None


def before_a_final_colon_or_comma(text: str) -> int | None:
    """Where a match of ``([:,])$`` can start (``$`` also matches before a final line
    break): the last two characters; ``None`` when neither can match."""
    if text.endswith((":", ",", ":\n", ",\n")):
        return max(len(text) - 2, 0)
    return None


# Rules anchored at the end of the text -> where in the text a match can start.
AT_END = {
    r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*+)\s*$": before_a_final_period,
    r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$": before_a_final_period,  # older NLTK releases
    r'([^\.])(\.)([\]\)}>"\']*)\s*$': before_a_final_period,
    r"([:,])$": before_a_final_colon_or_comma,
}


def collapse_whitespace(text: str) -> str | None:
    """``re.sub(r"\s+", " ", text)`` for a text that starts and ends with a space (as the
    tokenizer pads it), by ``str.split``; ``None`` where the two differ (\x1c-\x1f,
    which ``str.isspace`` counts and ``\s`` does not)."""
    if "\x1c" in text or "\x1d" in text or "\x1e" in text or "\x1f" in text:
        return None
    words = text.split()
    return f" {' '.join(words)} " if words else " "


# Rules run by a function instead of their pattern (``None`` from it: run the pattern).
INSTEAD = {(r"\s+", " "): collapse_whitespace}

CONTRACTION = re.compile(r"\(\?i\)(?:\\b| )\(('?[a-z]+)\)\(\?#X\)\(('?[a-z]+)\)(?:\\b|\(\?=\\s\))")
# Case-insensitive matching treats these as the ASCII letter, which ``str.lower`` does not
# give ("İ" lowercases to "i" and a combining dot): ``regex`` pairs "i" with "İ", ``re``
# with "ı", both pair "s" with "ſ". Every other letter they pair lowercases to it.
FOLD = str.maketrans({"İ": "i", "ı": "i", "ſ": "s"})


def contraction_literal(pattern: str) -> tuple[str, ...]:
    """``(?i)\\b(can)(?#X)(not)\\b`` needs ``"cannot"`` (in lowercase text); ``()`` when the
    pattern is not of that shape."""
    found = CONTRACTION.fullmatch(pattern)
    return (found[1] + found[2],) if found else ()


def unwrapped(pattern):
    """The compiled pattern inside NLTK's ``redos.TimedPattern`` (or ``pattern`` itself)."""
    return getattr(pattern, "_rx", pattern)


class Rule:
    """One substitution of the tokenizer and the substrings of which its match needs one."""

    __slots__ = ("subn", "replacement", "needs", "ignore_case", "at_end", "instead")

    def __init__(self, pattern, replacement: str):
        pattern = unwrapped(pattern)
        self.subn, self.replacement = pattern.subn, replacement
        self.needs = NEEDS.get(pattern.pattern) or contraction_literal(pattern.pattern)
        self.ignore_case = bool(pattern.flags & re.IGNORECASE)  # 2 in re and regex
        self.at_end = AT_END.get(pattern.pattern)
        self.instead = INSTEAD.get((pattern.pattern, replacement))


def folded(text: str) -> str:
    """``text`` as a case-insensitive match sees its ASCII letters."""
    if "İ" in text or "ı" in text or "ſ" in text:
        text = text.translate(FOLD)
    return text.lower()


def apply(rules: list[Rule], text: str) -> str:
    """Each rule in turn, skipping those whose needed substrings are all absent; a rule
    anchored at the end runs on the text's tail."""
    lowered = None  # folded(text), kept until a rule changes the text
    for rule in rules:
        if rule.needs:
            if rule.ignore_case:
                if lowered is None:
                    lowered = folded(text)
                haystack = lowered
            else:
                haystack = text
            for needle in rule.needs:
                if needle in haystack:
                    break
            else:
                continue
        if rule.at_end is not None:  # a match can start only here: the rule runs on the tail
            start = rule.at_end(text)
            if start is None:
                continue
            tail, changes = rule.subn(rule.replacement, text[start:])
            if changes:
                text, lowered = text[:start] + tail, None
            continue
        if rule.instead is not None:
            new = rule.instead(text)
            if new is not None:
                if new != text:
                    text, lowered = new, None
                continue
        text, changes = rule.subn(rule.replacement, text)
        if changes:
            lowered = None
    return text


class FastWordTokenizer:
    """``NLTKWordTokenizer().tokenize(text)``, the same tokens, faster (see the module)."""

    def __init__(self):
        from nltk.tokenize import NLTKWordTokenizer

        nltk = NLTKWordTokenizer
        contraction = r" \1 \2 "
        self.before_padding = [Rule(p, r) for p, r in
                               [*nltk.STARTING_QUOTES, *nltk.PUNCTUATION,
                                nltk.PARENS_BRACKETS, nltk.DOUBLE_DASHES]]
        self.after_padding = [Rule(p, r) for p, r in nltk.ENDING_QUOTES]
        self.after_padding += [Rule(p, contraction)
                               for p in [*nltk.CONTRACTIONS2, *nltk.CONTRACTIONS3]]

    def tokenize(self, text: str) -> list[str]:
        text = apply(self.before_padding, text)
        return apply(self.after_padding, f" {text} ").split()
