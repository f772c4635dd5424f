"""Built-in heads: the next-token generator."""

import keras
import keras_nlp

from toolkit.heads import Head
from toolkit.hookspecs import hookimpl
from toolkit.params import Fraction
from toolkit.vocab import PAD


class GeneratorHead(Head):
    """Next-token prediction: a TimeDistributed Dense softmax over the vocabulary at every step."""

    def __init__(self, dropout: Fraction = 0.0):
        self.dropout = dropout

    def build(self, features, vocab_size: int):
        if self.dropout:
            features = keras.layers.Dropout(self.dropout, name="head_dropout")(features)
        dense = keras.layers.Dense(vocab_size, activation="softmax", dtype="float32")
        return keras.layers.TimeDistributed(dense, name="head_generator")(features)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self):
        # Exact per-token perplexity: sums over unpadded, weighted tokens across batches.
        return [keras_nlp.metrics.Perplexity(mask_token_id=PAD, name="perplexity")]


@hookimpl
def register_heads(register):
    register("generator", GeneratorHead)
