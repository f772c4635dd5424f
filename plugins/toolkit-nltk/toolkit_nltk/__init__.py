"""lstm-text-toolkit plugin: NLTK tokenizer, stop words, punctuation, stemming, corpora."""

from toolkit.hookspecs import hookimpl
from toolkit_nltk.corpora import NLTKCorpus
from toolkit_nltk.stages import NLTKWords, Punctuation, Stem, StopWords


@hookimpl
def register_preprocessors(register):
    register("nltk-words", NLTKWords)
    register("nltk-stopwords", StopWords)
    register("punctuation", Punctuation)
    register("stem", Stem)


@hookimpl
def register_corpora(register):
    register("nltk", NLTKCorpus)
