"""The toolkit's own preprocessing stages on small texts."""

from toolkit.default_plugins.preprocessors import (Characters, GutenbergStrip, Lowercase,
                                                   UnicodeNormalize, Whitespace)


def test_unicode_normalisation():
    decomposed = "Caf\u0065\u0301"
    assert UnicodeNormalize()(decomposed) == "Caf\u00e9"
    assert UnicodeNormalize("NFKC")("\ufb01ne \uff21") == "fine A"
    assert UnicodeNormalize("NFC")("\ufb01ne") == "\ufb01ne"


def test_whitespace_normalisation_keeps_paragraphs():
    text = "Call  me\tIshmael. \r\nSome years ago \u00a0never mind\n\n\n\nhow long.  \n"
    assert Whitespace()(text) == "Call me Ishmael.\nSome years ago never mind\n\nhow long.\n"
    assert Whitespace(max_blank_lines=0)("a\n\n\nb") == "a\nb"


def test_gutenberg_boilerplate_is_stripped_and_plain_text_untouched():
    raw = ("The Project Gutenberg eBook of Emma\nLicense text\n"
           "*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***\n\nEMMA\n\nChapter I\n\n"
           "*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***\nMore license\n")
    assert GutenbergStrip()(raw) == "EMMA\n\nChapter I\n"
    plain = "[Emma by Jane Austen 1816]\n\nVOLUME I\n"
    assert GutenbergStrip()(plain) == plain


def test_lowercase_and_characters():
    assert Lowercase()("ROMEO:") == "romeo:"
    tokens = Characters()("Ay,\nme")
    assert list(tokens) == ["A", "y", ",", "\n", "m", "e"]
    assert Characters().detokenize(tokens) == "Ay,\nme"
