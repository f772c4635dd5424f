"""Config files: TOML, every component chosen by registered name, every key validated.

A config has these sections; component sections name a registered component with
``use`` and give its parameters beside it::

    [corpus]        use = "tinyshakespeare"
    [[preprocess]]  use = "lowercase"        # an ordered list of stages
    [[preprocess]]  use = "chars"
    [vocab]         min_count = 1
    [encoder]       use = "embedding"   dim = 64
    [sequences]     use = "stream"      batch_size = 64   length = 100
    [core]          use = "lstm"        units = 256
    [head]          use = "generator"
    [train]         epochs = 10
    [generate]      length = 500

``--set section.key=value`` (``preprocess.0.use=...`` for list items) overrides any
key; the value is read as TOML, or taken as a string when it is not valid TOML.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w

from toolkit import hookspecs
from toolkit.config import params
from toolkit.config.typed import Config, Origin, tables
from toolkit.errors import ConfigError, ToolkitError, did_you_mean
from toolkit.config.params import (Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                            PositiveInt, Probability)
from toolkit.plugins import Registry

# section -> (family, default component name or None when the section is required)
COMPONENT_SECTIONS = {
    "corpus": ("corpus", None),
    "encoder": ("encoder", "embedding"),
    "sequences": ("sequence builder", "stream"),
    "core": ("core", "lstm"),
    "head": ("head", "generator"),
}
DEFAULT_PREPROCESS = [{"use": "chars"}]


def vocab_settings(min_count: PositiveInt = 1, max_size: NonNegativeInt = 0,
                   subword: Literal["none", "wordpiece"] = "none"):
    """Vocabulary: tokens seen fewer than ``min_count`` times in the training split, or
    beyond the ``max_size`` most frequent (0 = no limit), map to the out-of-vocabulary id.
    ``subword = "wordpiece"`` splits tokens into keras-nlp WordPiece pieces instead
    (``max_size`` pieces, 8000 when 0), so that no word is unknown."""


def train_settings(
    epochs: PositiveInt = 10,
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam",
    learning_rate: PositiveFloat = 0.002,
    clipnorm: NonNegativeFloat = 5.0,
    weight_decay: NonNegativeFloat = 0.0,
    validation_fraction: Fraction = 0.1,
    max_minutes: NonNegativeFloat = 0.0,
    keep: Literal["best", "last"] = "best",
    cache: bool = True,
    seed: NonNegativeInt = 1,
    on_divergence: Literal["stop", "continue"] = "stop",
    divergence_steps: NonNegativeInt = 200,
    tensorboard: bool = True,
    sample_length: NonNegativeInt = 200,
    xla: Literal["auto", "on", "off"] = "auto",
    backend: Literal["tensorflow", "jax"] = "tensorflow",
    monitor: str = "auto",
    patience: NonNegativeInt = 0,
    distribute: Literal["none", "mirrored", "multi-worker"] = "none",
    preprocess_workers: NonNegativeInt = 0,
):
    """Training: the last ``validation_fraction`` of every document is held out for
    validation; ``max_minutes`` (0 = no limit) stops training after the epoch that
    passes that much wall-clock time; ``clipnorm`` = 0 turns gradient clipping off;
    ``weight_decay`` > 0 decays every weight by that factor times the learning rate at
    each step (decoupled, as AdamW does; any optimizer);
    ``keep = "best"`` makes the run's model the epoch with the best ``monitor`` figure
    (``"auto"``: validation macro-F1 for attribution heads, validation perplexity for
    generators; any logged validation figure, e.g. ``"val_loss"``, ``"val_accuracy"``;
    accuracies and F1 scores are maximised, losses and perplexities minimised);
    ``patience`` = N stops a run whose ``monitor`` has not improved for N epochs (0 =
    never);
    ``cache`` stores token ids so the next run with the same data and preprocessing
    starts at once (``$TOOLKIT_CACHE``). A loss that is not finite, a step loss smoothed
    over ``divergence_steps`` steps far above uniform guessing (0 turns this rule off), or
    an epoch whose mean loss is far above it (twice ln of the number of classes, at least
    2 nats more) stops training with exit status 3 and the last good checkpoint kept,
    unless ``on_divergence = "continue"``. ``tensorboard``
    writes TensorBoard logs under the run's ``logs/``; a generator run samples
    ``sample_length`` tokens after every epoch (0 = none). ``xla`` compiles the training
    step with XLA: ``"auto"`` times a few steps both ways on runs long enough to win the
    compilation back and keeps the faster (the CPU model decides; a GPU keeps cuDNN,
    which XLA cannot compile). ``backend`` is the Keras backend that trains: TensorFlow,
    or JAX (always compiled with XLA; ``KERAS_BACKEND`` must not name another one in
    the same process; no ``distribute``); the ``.keras`` files load on either.
    ``distribute`` trains on several
    devices (``"mirrored"``: every local GPU) or machines (``"multi-worker"``, with
    ``TF_CONFIG``) with ``tf.distribute``; stateful streams keep their rows and their
    state per replica (docs/scale.md). A corpus whose preprocessing takes more than half a
    second is preprocessed by ``preprocess_workers`` processes (0 = one per core, 1 = in
    the training process), whole documents (or pieces of long ones) in parallel, with the
    same tokens."""


def generate_settings(
    prime: str = "\n",
    length: PositiveInt = 500,
    temperature: NonNegativeFloat = 1.0,
    top_k: NonNegativeInt = 0,
    top_p: Probability = 1.0,
    samples: PositiveInt = 1,
    seed: NonNegativeInt | None = None,
):
    """Generation defaults, used by ``toolkit generate`` unless given on its command line.
    ``temperature`` = 0 is greedy: always the likeliest token (the same text every
    time, whatever the seed). ``top_k`` = 0 and ``top_p`` = 1 turn those filters off."""


def init_settings(run: str | None = None,
                  copy: list[Literal["encoder", "core", "head"]] = ("encoder", "core"),
                  freeze: bool = False, unfreeze_after: NonNegativeInt = 0,
                  lr_decay: float = 1.0):
    """Start from another trained run's weights: ``run`` is its directory; ``copy`` lists
    what is copied, layer by layer (``"encoder"``, ``"core"``; ``"head"`` starts a
    generator's head, or every author's head of ``author-lms``, from that run's (or
    ``[pretrain]``'s) generator head); copying the encoder also takes that run's vocabulary. ``freeze`` keeps the copied layers fixed, and
    ``unfreeze_after`` = N trains them again from epoch N on (0 = never). ``lr_decay``
    = D (ULMFiT's discriminative fine-tuning; 1 = off) steps the copied layers more
    gently than the new head: the top copied layer at ``train.learning_rate`` / D, each
    one below it D times slower again (ULMFiT used 2.6)."""


def pretrain_settings(epochs: NonNegativeInt = 0, max_minutes: NonNegativeFloat = 0.0,
                      batch_size: PositiveInt = 64, length: PositiveInt = 100,
                      learning_rate: PositiveFloat | None = None):
    """Pretrain the encoder and core on this corpus's own text before an attribution run
    (ULMFiT's target-task language model): a stateful stream language model (``batch_size``
    streams, windows of ``length`` tokens) reads every training passage and every document
    the split leaves out (authors below ``sequences.split.min_documents``), never a
    validation or test token, for ``epochs`` (0 = off) or until ``max_minutes`` (0 = no
    limit), at ``learning_rate`` (default ``train.learning_rate``). It starts from
    ``init.run``'s weights when that is set. The run's model then takes ``init.copy`` from
    it, and ``init.freeze``, ``unfreeze_after`` and ``lr_decay`` apply as for another run's
    weights."""


def ensemble_settings(
        members: list[Literal["lstm", "ngrams", "burrows-delta", "cosine-delta"]] = (
            "lstm", "ngrams"),
        delta_words: PositiveInt = 100):
    """The attribution ensemble (``toolkit attribute --model ensemble``): the
    log-probabilities of its ``members`` (the calibrated LSTM, the character n-grams,
    Burrows' Delta, Cosine Delta), each weighed by a non-negative weight fitted on the
    validation passages when training ends (or by ``toolkit calibrate``). Every member is
    fitted on the run's training passages; ``delta_words`` is how many of their most
    frequent words the Deltas compare (stylo's default, 100)."""


# Keys that [core] had before weight initialisation got its own [init] section.
MOVED_TO_INIT = {"init_from": "run", "freeze": "freeze", "unfreeze_after": "unfreeze_after"}

PLAIN_SECTIONS = {"vocab": vocab_settings, "init": init_settings, "pretrain": pretrain_settings,
                  "train": train_settings, "generate": generate_settings,
                  "ensemble": ensemble_settings}
SECTIONS = ("corpus", "preprocess", "vocab", "encoder", "sequences", "core", "head",
            "init", "pretrain", "train", "generate", "ensemble")


def read(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file (no validation)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ToolkitError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ToolkitError(f"{path}: not valid TOML: {err}") from None


def parse_value(text: str) -> Any:
    """A command-line value read as TOML (``3``, ``0.5``, ``true``, ``["a"]``), else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to a raw config (a copy is returned).

    An empty value (``section.key=``) removes the key, so it takes its default. Setting a
    component's ``use`` to another name drops the file's other keys of that section
    (they belonged to the old component); keys given with ``--set`` stay."""
    raw = copy.deepcopy(raw)
    given: dict[int, set] = {}      # id(table) -> keys set on it with --set
    replaced: dict[int, dict] = {}  # id(table) -> table whose component changed
    for item in overrides:
        flag = f"--set {item}"
        key_path, sep, text = item.partition("=")
        parts = key_path.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError("", f"expected SECTION.KEY=VALUE, received {item!r}", flag)
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(where, f"no item {part} in a list of {len(node)}", flag)
                node = node[int(part)]
            else:
                if part == "preprocess" and part not in node:
                    node[part] = copy.deepcopy(DEFAULT_PREPROCESS)
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(where, "is a value, not a section", flag)
        if isinstance(node, list):
            raise ConfigError(key_path, "cannot replace a whole list item; set one of its keys",
                              flag)
        key, text = parts[-1], text.strip()
        if not text:
            node.pop(key, None)
            continue
        value = parse_value(text)
        if key == "use" and node.get("use") != value:
            replaced[id(node)] = node
        given.setdefault(id(node), set()).add(key)
        node[key] = value
    for table_id, table in replaced.items():
        for key in [k for k in table if k not in given[table_id]]:
            del table[key]
    return raw


def resolve(raw: dict[str, Any], registry: Registry, config_file: str | None = None,
            overrides: list[str] = ()) -> Config:
    """Validate a raw config and return it complete, every default filled in, as a frozen
    :class:`~toolkit.config.typed.Config` that knows where each value came from: one of
    ``overrides`` (``--set``), ``raw`` (the file ``config_file`` names), or the default."""
    for section in raw:
        if section not in SECTIONS:
            raise ConfigError(section, f"unknown section.{did_you_mean(section, SECTIONS)} "
                                       f"Known sections: {', '.join(SECTIONS)}", config_file)
    resolved: dict[str, Any] = {}
    for section in SECTIONS:
        value = raw.get(section)
        if section == "preprocess":
            resolved[section] = resolve_preprocess(value, registry, config_file)
        elif section in COMPONENT_SECTIONS:
            resolved[section] = resolve_component(section, value, registry, config_file)
        else:
            table = expect_table(section, value if value is not None else {}, config_file)
            resolved[section] = params.validate(PLAIN_SECTIONS[section], table, section, config_file)
    check_init(resolved["init"], resolved["pretrain"], config_file)
    members = list(resolved["ensemble"]["members"])
    if not members or len(set(members)) < len(members):
        raise ConfigError("ensemble.members", f"expected one or more different members, "
                                              f"received {members}; e.g. [\"lstm\", "
                                              f"\"ngrams\"]", config_file)
    vocab = resolved["vocab"]
    if vocab["subword"] == "wordpiece" and vocab["min_count"] != 1:
        raise ConfigError("vocab.min_count", "is not used with subword = \"wordpiece\" "
                                             "(WordPiece keeps every character); remove it "
                                             "or use max_size", config_file)
    return Config.of(resolved, origins(resolved, raw, config_file, overrides), config_file)


def origins(resolved: dict, raw: dict, config_file: str | None, overrides: list[str]) -> dict:
    """Where each value of ``resolved`` came from, by key path."""
    given = {tuple(int(p) if p.isdigit() else p for p in item.partition("=")[0].strip()
                   .split(".")): item for item in overrides}
    kind = "config dict" if config_file in (None, "config dict") else "config file"
    where = "" if kind == "config dict" else config_file
    found = {}
    for prefix, table in tables(resolved):
        raw_table = raw.get(prefix[0])
        if len(prefix) == 2:  # a stage of a list section
            raw_table = raw_table[prefix[1]] if isinstance(raw_table, list) else None
        for key in table:
            path = (*prefix, key)
            if path in given:
                found[path] = Origin("--set", f"--set {given[path]}")
            elif isinstance(raw_table, dict) and key in raw_table:
                found[path] = Origin(kind, where)
    return found


def check_init(init: dict[str, Any], pretrain: dict[str, Any], config_file: str | None) -> None:
    """Refuse ``[init]`` settings that cannot apply: those about copied weights need
    ``init.run`` or ``[pretrain]``."""
    if init["lr_decay"] < 1.0:
        raise ConfigError("init.lr_decay", f"must be at least 1 (1 = one learning rate for "
                                           f"every layer), received {init['lr_decay']}",
                          config_file)
    for key, off in (("freeze", False), ("unfreeze_after", 0), ("lr_decay", 1.0)):
        if init.get("run") is None and not pretrain["epochs"] and init[key] != off:
            raise ConfigError(f"init.{key}", "applies to weights copied from another run or "
                                             "from pretraining; set init.run to a trained "
                                             "run directory, or pretrain.epochs", config_file)
    if init["unfreeze_after"] and not init["freeze"]:
        raise ConfigError("init.unfreeze_after", "unfreezes frozen layers; set init.freeze = "
                                                 "true too", config_file)
    if not init["copy"]:
        raise ConfigError("init.copy", "copies nothing; list \"encoder\", \"core\" or both "
                                       "(and \"head\")", config_file)
    if len(set(init["copy"])) != len(init["copy"]):
        raise ConfigError("init.copy", f"names a part twice: {init['copy']}", config_file)


def expect_table(path: str, value: Any, config_file: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a table, received {params.show(value)}", config_file)
    return value


def resolve_component(section: str, value: Any, registry: Registry,
                      config_file: str | None, path: str | None = None,
                      family: str | None = None) -> dict[str, Any]:
    path = path or section
    family_name, default = COMPONENT_SECTIONS.get(section, (family, None))
    if value is None:
        if default is None:
            raise ConfigError(path, f"missing section; choose a {family_name} with "
                                    f"use = one of {registry.names(family_name)}", config_file)
        value = {"use": default}
    table = dict(expect_table(path, value, config_file))
    if section == "core":
        moved = sorted(k for k in table if k in MOVED_TO_INIT)
        if moved:
            keys = ", ".join(f"init.{MOVED_TO_INIT[k]}" for k in moved)
            raise ConfigError(f"core.{moved[0]}", f"weight initialisation has its own section "
                                                  f"now: write {keys} under [init] instead",
                              config_file)
    name = table.pop("use", default)
    if not isinstance(name, str):
        raise ConfigError(f"{path}.use", f"expected the name of a {family_name}, "
                                         f"received {params.show(name)}", config_file)
    try:
        component = registry.get(family_name, name, key=f"{path}.use")
    except ConfigError as err:
        raise ConfigError(err.path, err.message, config_file) from None
    return {"use": name, **params.validate(component.factory, table, path, config_file)}


def resolve_preprocess(value: Any, registry: Registry, config_file: str | None) -> list[dict]:
    if value is None:
        value = copy.deepcopy(DEFAULT_PREPROCESS)
    if not isinstance(value, list) or not value:
        raise ConfigError("preprocess", "expected a non-empty list of stages "
                                        "([[preprocess]] tables), received "
                                        f"{params.show(value)}", config_file)
    return [resolve_component("preprocess", stage, registry, config_file,
                              path=f"preprocess.{i}", family="preprocessor")
            for i, stage in enumerate(value)]


def load(path: str | Path | dict, registry: Registry, overrides: list[str] = (),
         config_file: str | None = None) -> Config:
    """Read, override and resolve a config file (or a dict laid out like one); an error
    about a key given with ``--set`` names that flag rather than the file."""
    raw = apply_overrides(path if isinstance(path, dict) else read(path), list(overrides))
    try:
        return resolve(raw, registry, config_file=config_file or config_file_name(path),
                       overrides=list(overrides))
    except ConfigError as err:
        for item in overrides:
            key = item.partition("=")[0].strip()
            if err.path == key or err.path.startswith(f"{key}.") or key.startswith(
                    f"{err.path}."):
                raise ConfigError(err.path, err.message, f"--set {item}") from None
        raise


def config_file_name(config: str | Path | dict) -> str:
    """How messages name a config: its path, or "config dict" for one given from Python."""
    return "config dict" if isinstance(config, dict) else str(config)


def upgrade_stored(stored: dict[str, Any]) -> dict[str, Any]:
    """A run's stored config in today's layout, meaning what it meant when the run was
    trained: runs written before ``[init]`` existed kept its keys in ``[core]``, and
    streams joined documents before ``sequences.documents`` existed."""
    stored = copy.deepcopy(stored)
    core = stored.get("core", {})
    if "init" not in stored:
        init = {new: core.pop(old) for old, new in MOVED_TO_INIT.items() if old in core}
        stored["init"] = {"copy": ["encoder", "core"], "freeze": False, "unfreeze_after": 0,
                          **init}
    sequences = stored.get("sequences", {})
    if sequences.get("use") == "stream" and "documents" not in sequences:
        sequences["documents"] = "joined"  # streams ran from one document into the next
    pretrain = stored.setdefault("pretrain", {})
    for name, parameter in params.parameters(pretrain_settings).items():
        if parameter.default is not None:
            pretrain.setdefault(name, parameter.default)
    train = stored.setdefault("train", {})
    if "monitor" not in train:
        # What picked the kept epoch before train.monitor existed: a resumed old run
        # goes on choosing its best epoch as it did.
        before = {"classifier": "val_loss", "author-lms": "val_perplexity"}
        train["monitor"] = before.get(stored.get("head", {}).get("use"), "auto")
    for name, parameter in params.parameters(train_settings).items():
        train.setdefault(name, parameter.default)
    return stored


def dumps(resolved: Config | dict[str, Any]) -> str:
    """The resolved config as TOML, in the form config files use (``[[preprocess]]`` tables)."""
    if isinstance(resolved, Config):
        resolved = resolved.to_dict()
    parts = []
    for section, value in resolved.items():
        if isinstance(value, list):
            parts += [f"[[{section}]]\n{tomli_w.dumps(item)}" for item in value]
        else:
            parts.append(tomli_w.dumps({section: value}))
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


@dataclass
class Components:
    """The instantiated components of a resolved config."""

    corpus: Any
    stages: list
    encoder: Any
    sequences: Any
    core: Any
    head: Any


# The families whose components the toolkit reads declared members of: they subclass these.
CONTRACTS = {"core": hookspecs.Core, "sequence builder": hookspecs.SequenceBuilder,
             "head": hookspecs.Head, "preprocessor": hookspecs.Stage}


def instantiate(section: str, table: dict[str, Any], family: str, registry: Registry,
                config_file: str | None = None):
    """Create one component; a factory's ``ValueError`` becomes a config error at ``section``."""
    settings = dict(table)
    component = registry.get(family, settings.pop("use"), key=f"{section}.use")
    try:
        made = component.factory(**settings)
    except ValueError as err:
        raise ConfigError(section, str(err), config_file) from None
    contract = CONTRACTS.get(family)
    if contract is not None and not isinstance(made, contract):
        raise ConfigError(f"{section}.use", f"{component.name!r} (plugin {component.plugin!r}) "
                                            f"gives a {type(made).__name__}, which must "
                                            f"subclass toolkit.hookspecs.{contract.__name__}: "
                                            f"the toolkit reads the members it declares", config_file)
    return made


def build_components(resolved: dict[str, Any], registry: Registry,
                     config_file: str | None = None) -> Components:
    """Instantiate every component of a resolved config and check that they fit together."""
    from toolkit.data.preprocess import check_chain

    made = {section: instantiate(section, resolved[section], family, registry, config_file)
            for section, (family, _) in COMPONENT_SECTIONS.items()}
    stages = [instantiate(f"preprocess.{i}", stage, "preprocessor", registry, config_file)
              for i, stage in enumerate(resolved["preprocess"])]
    check_chain(stages, [stage["use"] for stage in resolved["preprocess"]], config_file)
    components = Components(stages=stages, **made)
    tokenizer = next(s for s in stages if s.consumes == "text" and s.produces == "tokens")
    if resolved["vocab"]["subword"] == "wordpiece" and tokenizer.unit == "characters":
        raise ConfigError("vocab.subword", "\"wordpiece\" splits words into pieces, but the "
                                           "tokenizer gives single characters; use a word "
                                           "tokenizer (`toolkit plugins` lists them) or "
                                           "subword = \"none\"", config_file)
    try:
        components.sequences.accept_head(components.head)
    except ValueError as err:
        raise ConfigError("head.use", f"{params.show(resolved['head']['use'])}: {err}",
                          config_file) from None
    if components.sequences.resets_state and components.core.recurrent_dropout:
        # Plugin cores' layers are checked when the model is built (Keras is not loaded yet).
        raise ConfigError("sequences.documents", (
            f"\"separate\" starts a row's state again where a document begins, mid-batch, "
            f"which dropout inside the recurrent cell prevents (core.recurrent_dropout = "
            f"{components.core.recurrent_dropout}); set it to 0 (core.dropout, between "
            f"layers, is fine), or documents = \"joined\" to read the documents as one "
            f"text"), config_file)
    core_stateful = components.core.stateful
    if core_stateful is not None and core_stateful != components.sequences.stateful:
        raise ConfigError(
            "core.stateful",
            f"sequences.use = {params.show(resolved['sequences']['use'])} needs a "
            f"{'stateful' if components.sequences.stateful else 'stateless'} core, received "
            f"stateful = {params.show(core_stateful)}; remove core.stateful to follow the "
            f"sequence builder", config_file)
    return components
