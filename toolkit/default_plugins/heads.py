"""Built-in heads: the next-token generator, the author classifier and per-author language models."""

from typing import Literal

import numpy as np

from toolkit.hookspecs import Head, hookimpl
from toolkit.config.params import Fraction
from toolkit.data.vocab import PAD

# Keras is imported inside the methods: configs are checked, and `toolkit --help` answers,
# without loading TensorFlow.


def token_loss():
    import keras

    # The output carries the encoder's mask, so Keras sums the weighted losses of real
    # tokens and divides by their number: padding changes neither the loss nor its scale,
    # and class weights keep their effect within a batch.
    return keras.losses.SparseCategoricalCrossentropy()


def nats():
    # The token-weighted mean cross-entropy of the epoch (padding and warm-up weigh 0):
    # the one loss figure that the epoch line, metrics.json and evaluate all report.
    import keras

    return keras.metrics.SparseCategoricalCrossentropy(name="nats")


def perplexity():
    import keras_nlp

    # Exact per-token perplexity: sums over unpadded, weighted tokens across batches.
    return keras_nlp.metrics.Perplexity(mask_token_id=PAD, name="perplexity")


class GeneratorHead(Head):
    """Next-token prediction: a TimeDistributed Dense softmax over the vocabulary at every step."""

    def __init__(self, dropout: Fraction = 0.0):
        self.dropout = dropout

    def build(self, features, context):
        import keras

        if self.dropout:
            features = keras.layers.Dropout(self.dropout, name="head_dropout")(features)
        from toolkit.model.layers import TimeDistributedDense

        dense = keras.layers.Dense(context.vocab_size, activation="softmax", dtype="float32")
        return TimeDistributedDense(dense, name=GENERATOR_LAYER)(features)

    def loss(self):
        return token_loss()

    def metrics(self):
        return [nats(), perplexity()]

    def next_token_softmax(self, model, author=None):
        try:
            return tuple(model.get_layer(GENERATOR_LAYER).get_weights())
        except ValueError:  # a model this head did not build
            return None

    def start_from_softmax(self, model, kernel, bias):
        layer = model.get_layer(GENERATOR_LAYER)
        check_shapes(layer, [kernel, bias])
        layer.set_weights([kernel, bias])
        return layer.name


GENERATOR_LAYER = "head_generator"
AUTHOR_LMS_LAYER = "head_author_lms"


def check_shapes(layer, weights) -> None:
    expected = [tuple(v.shape) for v in layer.weights]
    found = [tuple(w.shape) for w in weights]
    if found != expected:
        raise ValueError(f"layer {layer.name!r}: weights of shapes {found} from the language "
                         f"model, {expected} here; use the same core settings and vocabulary "
                         f"(init.copy with \"encoder\")")


class ClassifierHead(Head):
    """Author classification: the core's outputs pooled over time, dropout, softmax over authors.

    ``pooling`` is ``"last"`` (the output at the last real token), ``"mean"`` or
    ``"max"`` over the real tokens (padding is masked), or ``"concat"`` of the three.
    """

    target = "label"
    labelled = True
    generates = False
    attributes = True
    # Attribution is judged by macro-F1: val_loss rises as the softmax grows sure of
    # itself while the share of passages attributed right still climbs.
    monitor = "val_macro_f1"

    def __init__(self, pooling: Literal["last", "mean", "max", "concat"] = "mean",
                 dropout: Fraction = 0.2):
        self.pooling, self.dropout = pooling, dropout

    def build(self, features, context):
        import keras

        from toolkit.model.layers import MaskedPooling

        if len(context.labels) < 2:
            raise ValueError(f"the classifier needs at least 2 authors in the training "
                             f"split, found {len(context.labels)}: {context.labels}")
        pooled = MaskedPooling(self.pooling, name="head_pooling")(features)
        if self.dropout:
            pooled = keras.layers.Dropout(self.dropout, name="head_dropout")(pooled)
        return keras.layers.Dense(len(context.labels), activation="softmax", dtype="float32",
                                  name="head_classifier")(pooled)

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self):
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def summarize(self, results):
        return {"loss": round(results["loss"], 5), "accuracy": round(results["accuracy"], 5)}

    def describe(self, summary):
        return f"accuracy {summary['accuracy']:.4f}, loss {summary['loss']:.4f}"

    def score_passages(self, model, passages, batch_size):
        """``log p(author | passage)`` from the softmax."""
        probabilities = model.predict(passages, batch_size=batch_size, verbose=0)
        return np.log(np.maximum(probabilities, 1e-12))

    def passage_log_scores(self, model, passages):
        from keras import ops

        return ops.log(ops.maximum(model(passages, training=False), 1e-12))


class AuthorLMsHead(Head):
    """One next-token language model per author on the shared core (Bagnall, PAN 2015).

    Each passage trains its own author's softmax; a text is attributed to the
    author whose model predicts it best (lowest cross-entropy per token).
    ``normalise``: subtract each author's mean validation log-likelihood per token
    before calibration (``"yes"``), never (``"no"``), or where that lowers the
    validation negative log-likelihood (``"auto"``). On texts unlike the training
    documents (``split.by = "document"``) it pays even where validation, cut from the
    training documents, does not show it (docs/benchmarks.md).
    """

    target = "next-token-by-label"
    labelled = True
    generates = False
    attributes = True
    writes_per_author = True
    monitor = "val_macro_f1"
    min_tokens = 2  # one token predicts the next

    def __init__(self, dropout: Fraction = 0.0,
                 normalise: Literal["auto", "yes", "no"] = "auto"):
        self.dropout = dropout
        self.normalise_scores = normalise

    def inputs(self, batch_size):
        import keras

        return {"author": keras.Input(batch_shape=(batch_size,), dtype="int32", name="author")}

    def build(self, features, context):
        import keras

        from toolkit.model.layers import AuthorSoftmax

        if not context.labels:
            raise ValueError("author-lms needs labelled documents (one head per author)")
        if self.dropout:
            features = keras.layers.Dropout(self.dropout, name="head_dropout")(features)
        return AuthorSoftmax(len(context.labels), context.vocab_size, dtype="float32",
                             name=AUTHOR_LMS_LAYER)([features, context.inputs["author"]])

    def loss(self):
        return token_loss()

    def metrics(self):
        return [nats(), perplexity()]

    def score_passages(self, model, passages, batch_size):
        """``log p(passage | author)``: the summed per-token log-probabilities under each
        author's softmax, computed for every author at once from one pass of the core."""
        from keras import ops

        lms = model.get_layer(AUTHOR_LMS_LAYER)
        features = self.core_features(model)
        scores = []
        for start in range(0, len(passages), batch_size):
            batch = passages[start:start + batch_size]
            rows = len(batch)
            if rows < batch_size:  # one shape for every batch: the graph is traced once
                batch = np.concatenate([batch, np.full((batch_size - rows, batch.shape[1]),
                                                       PAD, batch.dtype)])
            x, y = batch[:, :-1], batch[:, 1:]
            weights = ops.cast(y != PAD, "float32")
            # predict runs the core as a compiled graph (an eager call would step the
            # recurrent loop in Python)
            hidden = features.predict_on_batch(x)
            scores.append(np.asarray(lms.log_likelihoods(hidden, y, weights))[:rows])
        return np.concatenate(scores) if scores else np.zeros((0, lms.num_authors))

    def passage_log_scores(self, model, passages):
        from keras import ops

        x, y = passages[:, :-1], passages[:, 1:]
        hidden = self.core_features(model)(x, training=False)
        return model.get_layer(AUTHOR_LMS_LAYER).log_likelihoods(
            hidden, y, ops.cast(y != PAD, "float32"))

    def next_token_softmax(self, model, author=None):
        """One author's softmax; ``None`` without an author (there is no single one)."""
        from keras import ops

        if author is None:
            return None
        heads = model.get_layer(AUTHOR_LMS_LAYER)
        return (ops.convert_to_numpy(heads.kernel[author]),
                ops.convert_to_numpy(heads.bias[author]))

    def start_from_softmax(self, model, kernel, bias):
        """Every author starts as the language model: they grow apart only where their
        own texts differ."""
        layer = model.get_layer(AUTHOR_LMS_LAYER)
        authors = layer.weights[0].shape[0]
        weights = [np.repeat(kernel[None], authors, 0), np.repeat(bias[None], authors, 0)]
        check_shapes(layer, weights)
        layer.set_weights(weights)
        return layer.name

    def core_features(self, model):
        """The sub-model from tokens to the core's output, built once per trained model
        (attributing many texts must not rebuild it for each)."""
        import keras

        if getattr(self, "_features_of", None) is not model:
            self._features = keras.Model(model.get_layer("tokens").output,
                                         model.get_layer(AUTHOR_LMS_LAYER).input[0])
            self._features_of = model
        return self._features


@hookimpl
def register_heads(register):
    register("generator", GeneratorHead)
    register("classifier", ClassifierHead)
    register("author-lms", AuthorLMsHead)
