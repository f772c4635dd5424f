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



def test_whitespace_skipping_what_is_already_clean_changes_nothing():
    """The fast patterns give what the plain rules give: every run of spaces and tabs to
    one space, then no spaces around a line break."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    def plain(text, blank_runs):
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = re.sub(r"[ \t\f\v\u00a0]+", " ", text)
        text = re.sub(r" *\n *", "\n", text)
        return blank_runs.sub("\n\n", text)

    clean = Whitespace()

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.text(alphabet=" \t\f\v\u00a0\n\rab", max_size=40))
    def same(text):
        assert clean(text) == plain(text, clean.blank_runs)

    same()

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
