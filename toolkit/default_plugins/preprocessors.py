"""Built-in preprocessing stages: lowercase and the character tokenizer."""

from toolkit.hookspecs import hookimpl
from toolkit.preprocess import Stage


class Lowercase(Stage):
    """Lowercase the text (Unicode-aware ``str.lower``)."""

    def __call__(self, text: str) -> str:
        return text.lower()


class Characters(Stage):
    """Split text into characters: every character, spaces and newlines included, is a token."""

    produces = "tokens"

    def __call__(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens) -> str:
        return "".join(tokens)


@hookimpl
def register_preprocessors(register):
    register("lowercase", Lowercase)
    register("chars", Characters)
