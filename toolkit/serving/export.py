"""``toolkit export``: a trained run as a TensorFlow SavedModel (or a TensorFlow Lite
one-token step) that runs without the toolkit.

A SavedModel export holds, beside ``saved_model.pb`` and ``variables/``:

- signature ``step``: ``tokens`` ``(batch, n)`` int32 and every recurrent state in,
  ``logits`` ``(batch, n, vocab)`` (next-token log-probabilities) and every state out;
- signature ``initial_state``: ``batch_size`` in, every state zeroed for that many rows out;
- signature ``score`` (attribution runs): ``passages`` ``(batch, n)`` int32, right-padded
  with 0, in; ``scores`` ``(batch, authors)``, each author's log-score, out;
- plain files a client reads without the toolkit: ``vocab.json`` (id -> token),
  ``labels.json`` (author i), ``calibration.json``, ``config.toml``, ``metrics.json``,
  ``export.json`` (the signatures, the state names and sizes, the tokenizer) and
  ``MODEL_CARD.md`` (all of it in words, and how to sample and calibrate).

``--format tflite`` writes ``model.tflite``, the one-token step (batch 1) with the same
names, and the same plain files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from toolkit.backend import load_tensorflow

load_tensorflow()

import tensorflow as tf  # noqa: E402

from toolkit.errors import ToolkitError
from toolkit.model.assembly import author_twin, inference_twin
from toolkit.runs import rundir
from toolkit.runs.rundir import Run
from toolkit.serving.stepper import StepModel

FORMATS = ("saved_model", "tflite")
CARD, MANIFEST, TFLITE = "MODEL_CARD.md", "export.json", "model.tflite"
COPIED = (rundir.VOCAB, rundir.LABELS, rundir.CALIBRATION, rundir.CONFIG, rundir.METRICS)


def check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ToolkitError(f"--output {output}: exists and is not an empty folder; give a "
                           f"new folder (an export is never written over another)")
    if not output.parent.is_dir():
        raise ToolkitError(f"--output {output}: its parent folder {output.parent} does not "
                           f"exist")


def generator_of(run: Run, author: str | None) -> StepModel | None:
    """The explicit-state generator of ``run`` (``author``'s for an author-lms run), or
    ``None`` for an attribution run exported without ``--author``."""
    from toolkit.generate.sampling import author_index

    if author is not None:
        index = author_index(run, author)
        return StepModel(author_twin(run.model, run.components, len(run.vocab), 1, index))
    if run.head.generates:
        return StepModel(inference_twin(run.model, run.components, len(run.vocab), 1))
    return None


def state_specs(model: StepModel, batch: int | None) -> list[tf.TensorSpec]:
    return [tf.TensorSpec([batch, spec.size], tf.float32, name=spec.name)
            for spec in model.states]


def step_function(model: StepModel, one_token: bool = False):
    """The ``step`` signature: tokens and states in, logits and states out; with
    ``one_token``, for one token of one row (shapes ``(1, 1)``) through the cells."""
    names = [spec.name for spec in model.states]
    batch, time = (1, 1) if one_token else (None, None)

    def step(tokens, *states):
        if one_token:
            probabilities, states = model.one_step(tokens[:, 0], list(states))
            probabilities = probabilities[:, None, :]
        else:
            probabilities, states = model(tokens, list(states))
        logits = tf.math.log(tf.maximum(probabilities, 1e-30))
        return {"logits": logits, **dict(zip(names, states))}

    return tf.function(step, input_signature=[
        tf.TensorSpec([batch, time], tf.int32, name="tokens"), *state_specs(model, batch)])


def initial_state_function(model: StepModel):
    names = [spec.name for spec in model.states]

    def initial_state(batch_size):
        return dict(zip(names, model.initial_state(batch_size)))

    return tf.function(initial_state, input_signature=[
        tf.TensorSpec([], tf.int32, name="batch_size")])


def score_function(run: Run):
    """The ``score`` signature of an attribution run, or ``None``."""
    head, model = run.head, run.model
    if not head.attributes:
        return None

    def score(passages):
        return {"scores": head.passage_log_scores(model, passages)}

    concrete = tf.function(score, input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="passages")])
    probe = tf.zeros([1, max(head.min_tokens, 2)], tf.int32) + 2
    if concrete(probe)["scores"] is None:
        return None
    return concrete


def export_run(run_dir: str | Path, output: str | Path, format: str = "saved_model",
               author: str | None = None) -> Path:
    """Export a run (see the module docstring) into the new folder ``output``; returns
    the model card's path. The folder appears whole or not at all."""
    if format not in FORMATS:
        raise ToolkitError(f"--format: expected one of {', '.join(FORMATS)}, received {format!r}")
    output = Path(output)
    check_output(output)
    run = Run.open(run_dir)
    generator = generator_of(run, author)
    if generator is None and not run.head.attributes:
        raise ToolkitError(f"{run.path}: its {run.config.head.use!r} head neither generates "
                           f"nor attributes; nothing to export")
    if generator is None and run.head.writes_per_author:
        hint = f"; --author NAME exports one author's generator ({', '.join(run.labels)})"
    else:
        hint = ""
    if format == "tflite" and generator is None:
        raise ToolkitError(f"--format tflite: converts a generator's one-token step, and "
                           f"{run.path} is a {run.config.head.use!r} run{hint or ''}; export "
                           f"it as a saved_model for its score signature")
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        signatures = {}
        module = tf.Module()
        if generator is not None:
            module.step_layers = list(generator.layers)
            signatures["step"] = step_function(generator)
            signatures["initial_state"] = initial_state_function(generator)
        score = score_function(run) if format == "saved_model" else None
        if score is not None:
            module.model = run.model
            signatures["score"] = score
        if format == "saved_model":
            tf.saved_model.save(module, str(work), signatures=signatures)
        else:
            write_tflite(generator, work / TFLITE)
        for name in COPIED:
            if run.file(name).is_file():
                shutil.copyfile(run.file(name), work / name)
        manifest = describe_export(run, generator, sorted(signatures) if format ==
                                   "saved_model" else ["step"], format, author)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        (work / CARD).write_text(model_card(run, manifest), encoding="utf-8")
        work.chmod(0o755)  # as a folder made by hand, not mkdtemp's 0700
        if output.exists():
            output.rmdir()
        work.rename(output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return output / CARD


def write_tflite(generator: StepModel, path: Path) -> None:
    """The one-token step (batch 1) as a TensorFlow Lite model with a ``step`` signature,
    in TensorFlow Lite's built-in operations only."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    step = step_function(generator, one_token=True)
    # The weights frozen into the graph as constants: Keras's variables would otherwise
    # stay resource variables, which nothing initialises in a TensorFlow Lite model.
    concrete = step.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    module = tf.Module()
    module.step = tf.function(  # the frozen graph gives a flat list: named again
        lambda tokens, *states: tf.nest.pack_sequence_as(
            concrete.structured_outputs, tf.nest.flatten(frozen(tokens, *states))),
        input_signature=step.input_signature)
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures={"step": module.step})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["step"])
        path.write_bytes(converter.convert())


def describe_export(run: Run, generator: StepModel | None, signatures: list[str],
                    format: str, author: str | None) -> dict:
    """``export.json``: what a client needs to call the model without the toolkit."""
    preprocess = [dict(stage) for stage in run.config.to_dict().get("preprocess", [])]
    manifest = {
        "format": format, "run": run.path.name, "head": run.config.head.use,
        "author": author, "signatures": signatures,
        "unit": run.preprocessor.unit, "vocab_size": len(run.vocab),
        "pad_id": 0, "oov_id": 1, "preprocess": preprocess,
        "states": [{"name": s.name, "layer": s.layer, "size": s.size}
                   for s in (generator.states if generator else [])],
        "authors": list(run.labels),
        "passage_length": run.config.sequences.get("length"),
        "generate": {k: run.config.generate.get(k) for k in
                     ("prime", "length", "temperature", "top_k", "top_p")},
    }
    if format == "tflite":
        manifest["tflite"] = {"file": TFLITE, "batch": 1, "tokens_per_call": 1}
    return manifest


def model_card(run: Run, manifest: dict) -> str:
    """``MODEL_CARD.md``: the export in words."""
    config = run.config.to_dict()
    try:
        metrics = run.metrics()
    except (OSError, ValueError):
        metrics = {}
    validation = metrics.get("validation", {})
    lines = [f"# Model card: {manifest['run']}", "",
             f"Exported by `toolkit export` ({manifest['format']}) from the run "
             f"`{manifest['run']}`, a `{manifest['head']}` model"
             + (f", generating in the style of **{manifest['author']}**" if manifest["author"]
                else "") + ". It runs with TensorFlow alone; the toolkit is not needed.", "",
             "## The model", "",
             f"- tokens: {manifest['unit']}, a vocabulary of {manifest['vocab_size']} ids "
             f"(`vocab.json`: `tokens[i]` is id i; 0 is padding, 1 an unknown token)",
             f"- preprocessing: {json.dumps(manifest['preprocess'])}",
             f"- encoder: {json.dumps(config.get('encoder', {}))}",
             f"- core: {json.dumps(config.get('core', {}))}",
             f"- head: {json.dumps(config.get('head', {}))}"]
    if manifest["authors"]:
        lines.append(f"- authors (`labels.json`, class i is author i): "
                     f"{', '.join(manifest['authors'])}")
    if validation:
        lines.append("- validation: " + ", ".join(f"{k} {v}" for k, v in validation.items()))
    if "epochs_done" in metrics:
        lines.append(f"- trained for {metrics['epochs_done']} epoch(s), "
                     f"{metrics.get('training_minutes', '?')} minutes")
    lines += ["", "## Signatures", "", "| signature | inputs | outputs |", "| --- | --- | --- |"]
    states = ", ".join(f"`{s['name']}` (batch, {s['size']})" for s in manifest["states"])
    if "step" in manifest["signatures"]:
        shape = "(1, 1)" if manifest["format"] == "tflite" else "(batch, n)"
        lines.append(f"| `step` | `tokens` {shape} int32, {states} | `logits` "
                     f"(batch, n, {manifest['vocab_size']}): log-probabilities of the next "
                     f"token after each input token; every state after the last token |")
    if "initial_state" in manifest["signatures"]:
        lines.append(f"| `initial_state` | `batch_size` int32 | {states}, all zeros |")
    if "score" in manifest["signatures"]:
        lines.append(f"| `score` | `passages` (batch, n) int32, right-padded with 0 | "
                     f"`scores` (batch, {len(manifest['authors'])}): each author's "
                     f"log-score, higher meaning likelier |")
    lines += ["", "A padding id (0) in `tokens` is a step that leaves the state as it was.", ""]
    if "step" in manifest["signatures"]:
        lines += ["## How to sample", "",
                  "Tokenize the prime as the preprocessing above says (for characters: "
                  "each character is a token), map tokens to ids with `vocab.json`, feed "
                  "all but the last id through `step` from `initial_state`, then repeat: "
                  "feed the last token, divide its `logits` by the temperature, set ids 0 "
                  "and 1 to -inf, draw the next id from their softmax.", "",
                  "```python",
                  "import json, numpy as np, tensorflow as tf",
                  "model = tf.saved_model.load(\"EXPORT\")",
                  "tokens = json.load(open(\"EXPORT/vocab.json\"))[\"tokens\"]",
                  "ids = {t: i for i, t in enumerate(tokens)}",
                  "step, start = model.signatures[\"step\"], model.signatures[\"initial_state\"]",
                  "states = start(batch_size=tf.constant(1))",
                  f"prime = [ids[c] for c in {manifest['generate']['prime']!r}]",
                  "if len(prime) > 1:",
                  "    states = step(tokens=tf.constant([prime[:-1]]), **states)",
                  "    states.pop(\"logits\")",
                  "token, rng, text = prime[-1], np.random.default_rng(0), []",
                  "for _ in range(200):",
                  "    out = step(tokens=tf.constant([[token]]), **states)",
                  "    logits = out.pop(\"logits\")[0, -1].numpy() / 0.8",
                  "    logits[:2] = -np.inf",
                  "    p = np.exp(logits - logits.max())",
                  "    token = int(rng.choice(len(p), p=p / p.sum()))",
                  "    states = out",
                  "    text.append(tokens[token])",
                  "print(\"\".join(text))",
                  "```", ""]
        if manifest["format"] == "tflite":
            lines += ["With TensorFlow Lite: `runner = tf.lite.Interpreter(model_path="
                      "\"EXPORT/model.tflite\").get_signature_runner(\"step\")`, then "
                      "`runner(tokens=np.array([[token]], np.int32), **states)` one token at a "
                      "time, states starting as zeros of the sizes above.", ""]
    if "score" in manifest["signatures"]:
        lines += ["## How to attribute", "",
                  f"Cut the text's ids into passages of {manifest['passage_length']} tokens "
                  f"(the last one right-padded with 0) and call `score`. "
                  f"`calibration.json` turns scores into probabilities: with `n` the "
                  f"passage's real tokens, `z = (scores - offsets * n - biases) / "
                  f"temperature` (biases 0 when absent), `log p = log_softmax(z)`. A "
                  f"text's answer is the softmax of the mean of its passages' `log p`; "
                  f"when the top answer's log-odds `log(p / (1 - p))` fall below "
                  f"`unknown_below` (if not null) the answer is \"unknown\".", ""]
    return "\n".join(lines)
