"""The toolkit's hooks: every plugin family registers its components through one of these.

Each hook receives a ``register(name, factory)`` callback. ``name`` is what config
files write after ``use =``; ``factory`` is a callable (usually a class) whose keyword
parameters are the component's config keys. Annotate them
(``units: PositiveInt = 256``, see :mod:`toolkit.params`) and the toolkit validates
config values, fills in defaults and prints them in ``toolkit config show``. The
factory's docstring is shown by ``toolkit plugins``.

Registering a name that another plugin already registered in the same family is an
error naming both plugins.
"""

import pluggy

hookspec = pluggy.HookspecMarker("toolkit")
hookimpl = pluggy.HookimplMarker("toolkit")


@hookspec
def register_corpora(register):
    """Register corpus readers, called once when the registry is built.

    A factory returns an object with ``documents()`` yielding
    :class:`corpora.Document` (text, name, label) and ``describe()`` returning a
    short description. Example: ``register("tinyshakespeare", TinyShakespeare)``.
    """


@hookspec
def register_preprocessors(register):
    """Register preprocessing stages, called once when the registry is built.

    A factory returns a :class:`toolkit.preprocess.Stage`: ``consumes`` and
    ``produces`` say whether it maps text or tokens, and calling it on one
    document's value returns the new value. A stage that turns text into tokens
    is the tokenizer and must also provide ``detokenize(tokens) -> str``.
    """


@hookspec
def register_encoders(register):
    """Register encoders (token ids -> vectors), called once when the registry is built.

    A factory returns an object with ``build(vocab_size) -> keras.layers.Layer``;
    the layer must compute a mask that hides the padding id 0.
    """


@hookspec
def register_sequence_builders(register):
    """Register sequence builders (token ids -> batches), called once when the registry is built.

    A factory returns a :class:`toolkit.sequences.SequenceBuilder`: it knows its
    ``batch_size``, its window ``length`` and whether it needs a ``stateful`` core,
    plans the train / validation / test split of the documents, makes training and
    validation data of ``(inputs, targets, sample_weights)`` batches, and gives the
    callbacks that keep the recurrent state consistent.
    """


@hookspec
def register_cores(register):
    """Register recurrent cores, called once when the registry is built.

    A factory returns an object with ``build(stateful) -> list[keras.layers.Layer]``,
    layers applied in order to the encoder's output, the last returning sequences.
    """


@hookspec
def register_heads(register):
    """Register output heads, called once when the registry is built.

    A factory returns a :class:`toolkit.heads.Head`: ``build(features, context)``
    returns the model's outputs (``context`` holds the vocabulary size, the authors
    and the model's inputs), ``loss()`` / ``metrics()`` are passed to
    ``Model.compile``, and ``target`` says which targets the sequence builder feeds.
    """


@hookspec
def register_commands(register):
    """Register extra CLI subcommands, called when the CLI starts.

    A factory receives an ``argparse`` sub-parser to configure and returns the
    function to run with the parsed arguments; it returns the exit status.
    Example: ``register("stats", add_stats_command)``.
    """
