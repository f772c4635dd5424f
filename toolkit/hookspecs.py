"""Everything a plugin writes against: the hooks, and the contract of every component family.

Each hook receives a ``register(name, factory)`` callback. ``name`` is what config
files write after ``use =``; ``factory`` is a callable (usually a class) whose keyword
parameters are the component's config keys. Annotate them
(``units: PositiveInt = 256``, see :mod:`toolkit.config.params`) and the toolkit validates
config values, fills in defaults and prints them in ``toolkit config show``. The
factory's docstring is shown by ``toolkit plugins``; a ``ValueError`` it raises is
shown at the component's config section. Registering a name that another plugin
already registered in the same family is an error naming both plugins.

The hooks are called when the registry is built: once per process, and again only
when the set of registered plugins changes (a test registering its own plugin).

The classes below are the contracts the factories' products follow: subclass them
(or, for the Protocols, provide the same methods). ``docs/plugins.md`` is generated
from this module (``python -m toolkit.docgen``), so the two cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Literal, Protocol, Sequence

import pluggy

from toolkit.splits import tail_split

if TYPE_CHECKING:  # the contracts name Keras types without importing TensorFlow
    import keras
    import numpy as np

hookspec = pluggy.HookspecMarker("toolkit")
hookimpl = pluggy.HookimplMarker("toolkit")


# --- Hooks -------------------------------------------------------------------------------


@hookspec
def register_corpora(register):
    """Register corpus readers (family ``corpus``; config section ``[corpus]``).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns a :class:`Corpus`. Example: ``register("tinyshakespeare", TinyShakespeare)``.
    Returns nothing.
    """


@hookspec
def register_preprocessors(register):
    """Register preprocessing stages (family ``preprocessor``; ``[[preprocess]]`` items).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns a :class:`Stage`. Stages run in config order; the chain is checked
    (text stages, one tokenizer, token stages) before any text is read. Returns nothing.
    """


@hookspec
def register_encoders(register):
    """Register encoders, token ids to vectors (family ``encoder``; ``[encoder]``).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns an :class:`Encoder`. Returns nothing.
    """


@hookspec
def register_sequence_builders(register):
    """Register sequence builders, token ids to batches (family ``sequence builder``; ``[sequences]``).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns a :class:`SequenceBuilder`. Returns nothing.
    """


@hookspec
def register_cores(register):
    """Register recurrent cores (family ``core``; ``[core]``).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns a :class:`Core`. Returns nothing.
    """


@hookspec
def register_heads(register):
    """Register output heads (family ``head``; ``[head]``).

    Called when the registry is built. ``register(name, factory)``: the factory
    returns a :class:`Head`. Returns nothing.
    """


@hookspec
def register_commands(register):
    """Register extra CLI subcommands (family ``command``).

    Called when the CLI starts. ``register(name, factory)``: the factory receives
    the command's ``argparse`` sub-parser, configures it and returns the function
    to run with the parsed arguments, which returns the exit status.
    Example: ``register("stats", add_stats_command)``. Returns nothing.
    """


# --- Corpora -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One text of a corpus.

    ``label`` is the author (or any class) the text belongs to, ``None`` when the
    corpus is unlabelled; ``name`` identifies the document in messages and splits.
    """

    text: str
    name: str
    label: str | None = None


class Corpus(Protocol):
    """A source of documents (what a ``register_corpora`` factory returns)."""

    def documents(self) -> Iterator[Document]:
        """Yield every :class:`Document`; may be called more than once. Raise
        ``ToolkitError`` naming the file when the data is missing or unreadable."""
        ...

    def describe(self) -> str:
        """A short description used in messages, e.g. ``"file books/emma.txt"``."""
        ...


# --- Preprocessors -----------------------------------------------------------------------

Kind = Literal["text", "tokens"]


class Stage:
    """One preprocessing step (what a ``register_preprocessors`` factory returns).

    ``consumes`` and ``produces`` (``"text"`` or ``"tokens"``) say what it maps; a
    stage from text to tokens is the tokenizer, and its ``unit`` names its tokens in
    figures and messages (``"characters"``, ``"words"``).

    A large corpus is preprocessed by worker processes (``train.preprocess_workers``), one
    document per call: a stage must give a document the same result wherever it runs,
    and be picklable to run in workers that are spawned (once TensorFlow is loaded);
    one that is not keeps the work in the main process.

    A stage that sets ``piecewise`` lets a long document be cut into pieces after blank
    lines (where a match of ``\\n\\s*\\n`` ends), each preprocessed on its own, so that
    one long book keeps every core busy. It promises, for such a cut: a text stage gives
    the pieces' texts joined, and a cut stays after a blank line; the tokenizer gives
    the pieces' tokens with ``between_pieces`` between two pieces that each give
    tokens; a token stage treats each token on its own. Only a chain whose stages all
    set it is cut. A subclass inherits the promise: set it to ``False`` if it changes
    what the stage does in a way that breaks it.
    """

    consumes: Kind = "text"
    produces: Kind = "text"
    unit: str = "tokens"
    piecewise: bool = False
    between_pieces: tuple[str, ...] = ()  # the tokenizer's, when ``piecewise``

    def __call__(self, value):
        """One document's text (a ``str``) or tokens (a list of ``str``), transformed."""
        raise NotImplementedError

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into text; only the tokenizer needs it (generation uses it)."""
        raise NotImplementedError(f"{type(self).__name__} is not a tokenizer")


# --- Encoders and cores ------------------------------------------------------------------


class Encoder(Protocol):
    """Token ids to vectors (what a ``register_encoders`` factory returns)."""

    def build(self, vocab_size: int) -> "keras.layers.Layer":
        """A layer from int ids ``(batch, time)`` to vectors ``(batch, time, dim)`` whose
        output carries a mask hiding the padding id 0. The toolkit names it ``encoder``."""
        ...


class Core:
    """The recurrent layers every head is built on (what a ``register_cores`` factory
    returns; a plugin's core subclasses this class, which declares every member the
    toolkit reads).

    ``stateful`` may be ``None`` (follow the sequence builder, the normal case) or a
    bool that must agree with the builder's. ``recurrent_dropout`` is dropout inside the
    recurrent cell (> 0: a row's state cannot start afresh mid-batch, so streams that keep
    documents apart are refused).
    """

    stateful: bool | None = None
    recurrent_dropout: float = 0.0

    def build(self, stateful: bool) -> list["keras.layers.Layer"]:
        """Layers applied in order to the encoder's output, the last returning sequences.

        Layers are renamed ``core_<i>`` unless their name already starts with
        ``core_``: that is how ``[init]`` finds them in another run's model. When the
        streams keep documents apart, each ``keras.layers.RNN`` must zero one row's
        state mid-batch: a layer with ``supports_resets = True`` is called with
        ``resets=`` (``(batch, time)``, 1 where a row starts afresh); any other gets a
        wrapped cell (see ``toolkit/model/layers/row_resets.py``), which refuses dropout
        inside the cell."""
        raise NotImplementedError

    def prefers_xla(self, layers: list["keras.layers.Layer"]) -> bool:
        """Whether compiling the training step with XLA pays for these built layers
        (``train.xla = "auto"``; false by default: Keras's own RNN loops get slower
        under XLA on a CPU)."""
        return False


# --- Sequence builders -------------------------------------------------------------------


class EpochData:
    """Batches ``(inputs, targets, sample_weights)`` of one epoch, which may depend on the
    epoch (offsets, shuffling): what :meth:`SequenceBuilder.training` and ``validation`` return.

    Define ``__len__`` (batches per epoch), ``__getitem__(k)`` and ``batch_rows``
    (``None`` when the last batch may be smaller; a stateful builder fixes it). The
    epoch is set by ``fit``'s own epoch number through :meth:`set_epoch`, so a
    resumed run sees exactly the batches it would have seen.
    """

    batch_rows: int | None = None
    batch_size: int | None = None  # rows of a full batch where the last may be smaller
    length: int

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch with ``fit``'s epoch number (0-based)."""
        self.epoch = epoch

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, k):
        """Batch ``k`` of the current epoch as ``(inputs, targets, sample_weights)``."""
        raise NotImplementedError

    def signature(self) -> tuple:
        """``tf.TensorSpec``s of ``(inputs, targets, sample_weights)`` (by default all
        ``(batch_rows, length)``)."""
        import tensorflow as tf

        shape = (self.batch_rows, self.length)
        return (tf.TensorSpec(shape, tf.int32), tf.TensorSpec(shape, tf.int32),
                tf.TensorSpec(shape, tf.float32))

    def dataset(self):
        """A ``tf.data.Dataset`` over one epoch, read afresh each time ``fit`` iterates it.

        Shapes are static where the batch size is fixed: a stateful model needs it."""
        import tensorflow as tf

        dataset = tf.data.Dataset.from_generator(
            lambda: (self[k] for k in range(len(self))), output_signature=self.signature())
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self)))


@dataclass
class Passages:
    """Labelled passages: what a builder's :meth:`SequenceBuilder.data` gives for a head
    that attributes, and what ``evaluate`` scores."""

    ids: "np.ndarray"      # (passages, length), right-padded with 0
    labels: "np.ndarray"   # (passages,) index into the run's label list
    weights: "np.ndarray"  # (passages,) sample weight of each passage
    places: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


class SequenceBuilder:
    """Token ids to Keras batches (what a ``register_sequence_builders`` factory returns).

    ``batch_size`` and ``length`` (tokens per window or passage) come from the config;
    ``stateful`` says whether the core must carry state from batch to batch (then
    every batch has exactly ``batch_size`` rows); ``resets_state`` that a row's state
    starts afresh mid-batch where a document begins (the model then takes a ``"resets"``
    input, ``(batch, time)``, which the builder's batches carry); ``starts_state`` that
    a row's state starts afresh only before a batch (a ``"starts"`` input, ``(batch,)``,
    1 for a row whose state is zeroed before the batch; the core keeps its fastest kernel).
    """

    stateful: bool = False
    resets_state: bool = False
    starts_state: bool = False
    batch_size: int
    length: int

    def accept_head(self, head: "Head") -> None:
        """Raise ``ValueError`` (shown at ``head.use``) if this builder cannot feed ``head``;
        the head's ``target`` says what it needs. By default next-token targets only."""
        if head.target != "next-token":
            raise ValueError(f"this sequence builder gives next-token targets; the head "
                             f"needs {head.target!r} targets: use sequences.use = \"passages\"")

    def plan_split(self, documents: list[Document], tokens: list[list[str]],
                   validation_fraction: float, seed: int) -> dict:
        """Which tokens of which document go to which split, decided before any id exists:
        ``{"train": [Segment, ...], "validation": [...], "test": [...]}`` (``test`` optional).
        By default the last ``validation_fraction`` of every document is validation.

        ``documents`` give each document's name and label; their text is not kept (a
        corpus may be bigger than memory). ``tokens[d]`` is document ``d``'s tokens, a
        sequence read from disk as it is indexed or iterated."""
        return tail_split([len(t) for t in tokens], validation_fraction)

    def data(self, split, labels: Sequence[str] = (), training: bool = False):
        """What ``training`` and ``validation`` read from a :class:`toolkit.splits.Split`
        (by default its ids end to end). ``labels`` is the run's author list;
        ``training`` says it is the training split. For a head that attributes this
        must be :class:`Passages`."""
        return split.concatenated()

    def training(self, data, seed: int) -> EpochData:
        """The training batches made from ``data(train split)``; ``seed`` drives offsets
        or shuffling, with the epoch number."""
        raise NotImplementedError

    def validation(self, data) -> EpochData:
        """The validation (or evaluation) batches made from ``data(split)``: the same
        every epoch."""
        raise NotImplementedError

    def callbacks(self, training_data: EpochData) -> list["keras.callbacks.Callback"]:
        """Callbacks ``fit`` needs with ``training_data`` (none by default; a stateful
        builder resets state). The toolkit itself tells the data each epoch's number."""
        return []

    def passages(self, ids: "np.ndarray") -> "np.ndarray":
        """One text's ids cut as training passages were cut, right-padded to ``length``:
        what ``toolkit attribute`` scores. Only builders that feed attribution heads have it."""
        raise NotImplementedError(f"{type(self).__name__} does not cut texts into passages")

    def describe(self) -> dict:
        """Settings worth showing in reports (e.g. how the split was made)."""
        return {}


# --- Heads -------------------------------------------------------------------------------


@dataclass
class HeadContext:
    """What a head may need to build its layers.

    ``labels`` are the run's authors (class ``i`` is ``labels[i]``; empty for an
    unlabelled corpus); ``inputs`` are the model's inputs by name (``"tokens"`` and
    any the head asked for in :meth:`Head.inputs`).
    """

    vocab_size: int
    labels: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)


class Head:
    """Output layers on the core, with loss and metrics (what a ``register_heads`` factory returns).

    Class attributes say what the head is:

    - ``target``: the targets the sequence builder must feed: ``"next-token"`` (a token
      id at every position), ``"label"`` (one author index per sequence) or
      ``"next-token-by-label"`` (next tokens, with the author as input ``"author"``).
    - ``labelled``: the run needs the corpus's authors (kept in ``labels.json``).
    - ``generates``: an inference twin of the model samples text (``toolkit generate``).
    - ``attributes``: :meth:`score_passages` ranks authors (``toolkit attribute``).
    - ``monitor``: the logged value that picks the kept epoch when ``train.monitor =
      "auto"``: higher is better for accuracies and F1 scores, lower for the rest. An
      attributing head's runs log ``val_macro_f1`` and ``val_accuracy`` from
      :meth:`score_passages` on the validation passages.
    - ``min_tokens``: a passage needs this many real tokens to be scored.
    - ``normalise_scores``: ``"no"``, or, for scores whose scale differs by author
      (likelihoods), ``"yes"`` or ``"auto"``: subtract per-author offsets fitted on
      validation before calibration (see :class:`toolkit.attribution.calibration.Calibration`).
    - ``writes_per_author``: the head holds one language model per author, and
      ``toolkit generate`` needs ``--author`` to pick one (see :meth:`next_token_softmax`).
    - ``language_model``: the ``[head]`` table of the language model that ``[pretrain]``
      trains for this head's encoder and core.
    """

    target = "next-token"
    labelled = False
    generates = True
    attributes = False
    monitor = "val_perplexity"
    min_tokens = 1
    normalise_scores = "no"
    writes_per_author = False
    language_model = {"use": "generator"}

    def inputs(self, batch_size: int | None) -> dict:
        """Extra ``keras.Input``s by name, beside ``"tokens"`` (none by default)."""
        return {}

    def build(self, features, context: HeadContext):
        """The model's outputs from the core's output sequence ``features``; raise
        ``ValueError`` when the context does not fit (too few authors)."""
        raise NotImplementedError

    def loss(self) -> "keras.losses.Loss":
        """The loss passed to ``Model.compile``."""
        raise NotImplementedError

    def metrics(self) -> list:
        """Metrics compiled as ``weighted_metrics``: they receive the sample weights."""
        return []

    def next_token_softmax(self, model: "keras.Model", author: int | None = None):
        """The ``(kernel, bias)`` arrays of this head's next-token softmax in ``model``
        (``author``'s, for a head with ``writes_per_author``), or ``None`` for a head that
        has none there. ``init.copy = "head"`` and ``[pretrain]`` read a language model's
        head through it, and ``generate --author`` writes with one author's."""
        return None

    def start_from_softmax(self, model: "keras.Model", kernel, bias) -> str:
        """Set this head's next-token softmax in ``model`` to a language model's
        ``(kernel, bias)`` (``init.copy = "head"``); return the name of the layer set.
        Raise ``ValueError`` for a head with no such softmax, or shapes that differ."""
        raise ValueError("init.copy = \"head\" fills a next-token head (generator or "
                         "author-lms); this model's head has no such layer")

    def guessing_loss(self, context: HeadContext) -> float:
        """The loss of uniform guessing over this head's classes, in nats: ln of the
        vocabulary size for next-token heads, ln of the number of authors for ``"label"``
        heads. Training counts a loss far above it as divergence."""
        classes = len(context.labels) if self.target == "label" else context.vocab_size
        return math.log(max(classes, 2))

    def summarize(self, results: dict) -> dict:
        """The run's figures from ``model.evaluate``'s results (written to ``metrics.json``)."""
        if "perplexity" not in results:
            return {"loss": round(results["loss"], 5)}
        nats = results.get("nats", math.log(results["perplexity"]))
        return {"nats_per_token": round(nats, 5), "bits_per_token": round(nats / math.log(2), 5),
                "perplexity": round(results["perplexity"], 4)}

    def describe(self, summary: dict) -> str:
        """One line for the terminal from :meth:`summarize`'s figures."""
        if "nats_per_token" in summary:
            return (f"{summary['nats_per_token']:.4f} nats/token, "
                    f"{summary['bits_per_token']:.4f} bits/token")
        return ", ".join(f"{k} {v:.4f}" for k, v in summary.items())

    def score_passages(self, model: "keras.Model", passages: "np.ndarray",
                       batch_size: int) -> "np.ndarray":
        """Log-scores ``(passages, authors)`` of right-padded passages of ids, higher
        meaning likelier; heads with ``attributes = True`` define it."""
        raise NotImplementedError(f"{type(self).__name__} does not attribute texts")

    def passage_log_scores(self, model: "keras.Model", passages) -> "object | None":
        """:meth:`score_passages` as tensors: the log-scores ``(passages, authors)`` of a
        tensor of right-padded passages, computed with TensorFlow operations only, so that
        ``toolkit export`` can save it as a SavedModel's ``score`` signature; ``None`` for
        a head that does not attribute."""
        return None
