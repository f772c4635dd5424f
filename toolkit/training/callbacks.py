"""The callbacks ``train`` gives ``fit``: epochs, time, divergence, and the run's files.

:class:`RunWriter` is the only writer of a run's per-epoch files, in an order that a
kill at any moment cannot break: the history row first, then ``best.keras``, then
the checkpoint, then ``progress.json``, each written atomically. The checkpoint's
step count says how many epochs it holds; on resume, history rows beyond it are
dropped and those epochs are trained again, so no epoch is lost or counted twice.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from toolkit.backend import load_tensorflow

load_tensorflow()

import keras  # noqa: E402

from toolkit.runs import rundir as runs
from toolkit.hookspecs import EpochData


class TrainingClock(keras.callbacks.Callback):
    """Adds ``elapsed_minutes`` (training time, resumed runs included) and ``tokens_per_second``
    (positions trained per second of the epoch's training steps) to the epoch logs."""

    def __init__(self, positions_per_batch: int, prior_seconds: float = 0.0):
        super().__init__()
        self.positions_per_batch = positions_per_batch
        self.seconds = prior_seconds
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.train_seconds = None
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_test_begin(self, logs=None):
        if self.train_seconds is None and hasattr(self, "epoch_start"):
            self.train_seconds = time.perf_counter() - self.epoch_start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.epoch_start
        train_seconds = self.train_seconds or (time.perf_counter() - self.epoch_start)
        rate = self.batches * self.positions_per_batch / train_seconds
        self.rates.append(rate)
        if logs is not None:
            logs["elapsed_minutes"] = self.seconds / 60
            logs["tokens_per_second"] = rate


class FollowEpochs(keras.callbacks.Callback):
    """Tells the training :class:`EpochData` which epoch ``fit`` is starting (its offsets or
    shuffle depend on it)."""

    def __init__(self, data: EpochData):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)


class DivergenceGuard(keras.callbacks.Callback):
    """Notices a run that diverged. ``uniform`` is the loss of uniform guessing (ln of the
    number of classes: the vocabulary for a language model, the authors for a
    classifier); "far above" it is :func:`far_above_guessing`. A run diverged when

    - a step's loss is not finite;
    - the step loss, smoothed exponentially over about ``patience`` steps, is far above
      uniform guessing once at least ``patience`` steps have been seen (a long run whose
      loss only dips now and then; ``patience`` = 0 turns this rule off);
    - an epoch's mean loss (token-weighted ``nats`` where the head logs it) is far above
      uniform guessing (a run too short for the smoothed rule).

    With ``action = "stop"`` training stops at once and :class:`RunWriter` writes nothing
    more, so the last checkpoint is the last good epoch."""

    def __init__(self, uniform: float, patience: int, action: str = "stop"):
        super().__init__()
        self.uniform = uniform
        self.far = far_above_guessing(uniform)
        self.patience, self.action = patience, action
        self.smoothed: float | None = None
        self.steps = 0
        self.reason: str | None = None
        self.epoch = 0
        self.last_mean = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.last_mean = epoch, 0.0  # the running mean before this step

    def on_train_batch_end(self, batch, logs=None):
        running_mean = (logs or {}).get("loss")
        if running_mean is None or self.reason is not None:
            return
        running_mean = float(running_mean)
        if not math.isfinite(running_mean):
            self.diverged(f"the loss became {running_mean} at epoch {self.epoch + 1}, "
                          f"step {batch + 1}")
            return
        # Keras logs the epoch's running mean; the step's own loss is recovered from it.
        step_loss = (batch + 1) * running_mean - batch * self.last_mean
        self.last_mean = running_mean
        self.steps += 1
        if not self.patience:
            return
        weight = 2 / (self.patience + 1)
        self.smoothed = step_loss if self.smoothed is None else \
            weight * step_loss + (1 - weight) * self.smoothed
        if self.steps >= self.patience and self.smoothed > self.far:
            self.diverged(f"the loss, smoothed over {self.patience} steps "
                          f"(train.divergence_steps), reached {self.smoothed:.3f} at epoch "
                          f"{self.epoch + 1}, step {batch + 1}: {self.describe_far()}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        mean = logs.get("nats", logs.get("loss"))
        if mean is None or self.reason is not None:
            return
        mean = float(mean)
        if not math.isfinite(mean):
            self.diverged(f"the loss of epoch {epoch + 1} was {mean}")
        elif mean > self.far:
            self.diverged(f"the mean loss of epoch {epoch + 1} was {mean:.3f}: "
                          f"{self.describe_far()}")

    def describe_far(self) -> str:
        return (f"far above uniform guessing ({self.uniform:.3f} nats; divergence is above "
                f"{self.far:.3f})")

    def diverged(self, reason: str) -> None:
        self.reason = reason
        if self.action == "stop":
            self.model.stop_training = True
        else:
            print(f"toolkit: warning: {reason}; continuing (train.on_divergence = "
                  f"\"continue\")", file=sys.stderr)

    @property
    def stopped(self) -> bool:
        return self.reason is not None and self.action == "stop"


def far_above_guessing(uniform: float) -> float:
    """The loss that counts as diverged: twice the loss of uniform guessing, and at least
    2 nats above it. A model that learns starts near ``uniform`` and goes down; one whose
    learning rate is far too high swings between near 0 and many times ``uniform``."""
    return max(2 * uniform, uniform + 2)


MAXIMISED = ("accuracy", "f1", "auc", "precision", "recall")


def maximised(figure: str) -> bool:
    """Whether a logged figure is better when higher (accuracies, F1 scores, AUC,
    precision, recall: names containing one of ``MAXIMISED``) or lower (losses,
    perplexities, nats and anything else)."""
    return any(word in figure for word in MAXIMISED)


def improves(figure: str, value: float, best: float | None) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value > best if maximised(figure) else value < best)


def best_epoch(history: list[dict], figure: str) -> tuple[int, float] | None:
    """The (0-based epoch, value) with the best ``figure`` in history rows, the first if tied."""
    best = None
    for row in history:
        value = row.get(figure)
        if value not in (None, "") and improves(figure, float(value), None if best is None else best[1]):
            best = (int(row["epoch"]), float(value))
    return best


class AttributionValidation(keras.callbacks.Callback):
    """Adds ``val_macro_f1`` and ``val_accuracy`` (passages attributed to the right author,
    as ``toolkit evaluate`` counts them) to the epoch logs of an attribution run, from the
    head's own passage scores on the validation passages."""

    def __init__(self, head, passages, batch_size: int):
        super().__init__()
        self.head, self.passages, self.batch_size = head, passages, batch_size

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import accuracy_score, f1_score

        if logs is None:
            return
        scores = self.head.score_passages(self.model, self.passages.ids, self.batch_size)
        predicted, true = scores.argmax(axis=1), self.passages.labels
        classes = list(range(scores.shape[1]))
        logs["val_macro_f1"] = float(f1_score(true, predicted, labels=classes, average="macro",
                                              zero_division=0))
        logs["val_accuracy"] = float(accuracy_score(true, predicted))


class Patience(keras.callbacks.Callback):
    """Stops training once ``figure`` has not improved for ``epochs`` epochs in a row
    (0 = never), counting the epochs of a resumed run's history too; epochs before
    ``counts_from`` (trained with frozen layers) do not count. :attr:`reason` is set
    at once when the history already ran out of patience (a resumed run that stopped)."""

    def __init__(self, figure: str, epochs: int, history: list[dict], counts_from: int = 0):
        super().__init__()
        self.figure, self.epochs, self.counts_from = figure, epochs, counts_from
        counted = [row for row in history if int(row["epoch"]) >= counts_from]
        self.best = best_epoch(counted, figure)
        self.reason: str | None = None
        if counted:
            self.check(max(int(row["epoch"]) for row in counted))

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.counts_from:
            return
        value = (logs or {}).get(self.figure)
        if value is not None and improves(self.figure, float(value),
                                          None if self.best is None else self.best[1]):
            self.best = (epoch, float(value))
        if self.check(epoch):
            self.model.stop_training = True

    def check(self, epoch: int) -> bool:
        """Whether ``figure`` has gone ``epochs`` epochs without improving by ``epoch``."""
        since = self.best[0] if self.best is not None else self.counts_from - 1
        stale = epoch - since
        if self.epochs and stale >= self.epochs:
            self.reason = (f"{self.figure} did not improve for {stale} epochs after epoch "
                           f"{since + 1} (train.patience = {self.epochs})")
        return self.reason is not None


class RunWriter(keras.callbacks.Callback):
    """After every epoch: the history row, ``best.keras`` when ``monitor`` improved
    (:func:`maximised` says in which direction), the checkpoint (optimizer state
    included) and ``progress.json``, each atomically and in that order (see the
    module's docstring). Nothing is written for a diverged epoch."""

    def __init__(self, run, clock: TrainingClock, monitor: str, history: list[dict],
                 guard: DivergenceGuard | None = None):
        super().__init__()
        self.run, self.clock, self.monitor, self.guard = run, clock, monitor, guard
        self.history = list(history)
        best = best_epoch(self.history, monitor)
        self.best = None if best is None else best[1]

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.stopped:
            return
        logs = logs or {}
        row = {"epoch": epoch, **{key: float(value) for key, value in logs.items()}}
        self.history = [r for r in self.history if int(r["epoch"]) < epoch] + [row]
        runs.write_history(self.run.file(runs.HISTORY), self.history)
        value = logs.get(self.monitor)
        if value is not None and improves(self.monitor, float(value), self.best):
            self.best = float(value)
            runs.atomic_save_model(self.model, self.run.file(runs.BEST))
        runs.atomic_save_model(self.model, self.run.file(runs.CHECKPOINT))
        runs.write_json(self.run.file(runs.PROGRESS),
                        {"epochs_done": epoch + 1, "training_seconds": self.clock.seconds})


class ProgressLine(keras.callbacks.Callback):
    """A line every ``seconds`` while an epoch trains, for output that is not a terminal
    (logs, CI, notebooks' captured output): batch, loss, tokens per second, time left."""

    def __init__(self, seconds: float, epochs: int, steps: int, positions_per_batch: int,
                 stream=None):
        super().__init__()
        self.seconds, self.epochs, self.steps = seconds, epochs, steps
        self.positions = positions_per_batch
        self.stream = stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.first = epoch, None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.first is None:  # rates start after the first step (tracing, data start-up)
            self.first = self.last = now
            return
        if now - self.last < self.seconds:
            return
        self.last = now
        done, timed = batch + 1, batch
        rate = timed * self.positions / max(now - self.first, 1e-9)
        left = (self.steps - done) * (now - self.first) / timed
        name, value = training_loss(logs or {})
        shown = f", {name} {float(value):.4f}" if value is not None else ""
        print(f"epoch {self.epoch + 1}/{self.epochs}: batch {done}/{self.steps}{shown}, "
              f"{rate:,.0f} tokens/s, {int(left) // 60}:{int(left) % 60:02d} left in the epoch",
              file=self.stream, flush=True)


def training_loss(logs: dict) -> tuple[str, float | None]:
    """The loss figure a person reads: ``nats/token`` (the token-weighted cross-entropy)
    where the head logs ``nats``, else Keras's ``loss``."""
    if "nats" in logs:
        return "nats/token", logs["nats"]
    return "loss", logs.get("loss")


class EpochLine(keras.callbacks.ProgbarLogger):
    """Keras's progress bar and epoch line, with figures named for a person to read.

    Where the head logs ``nats`` (cross-entropy per real token, padding and warm-up
    weighing nothing), Keras's ``loss`` (the mean of per-batch losses) is the same
    quantity weighted differently: only ``nats/token`` is shown, for training and
    validation. Throughput and time read ``tokens/s`` and ``minutes``. The logs
    themselves (history, TensorBoard) keep their names."""

    NAMES = {"nats": "nats/token", "val_nats": "val_nats/token",
             "tokens_per_second": "tokens/s", "elapsed_minutes": "minutes"}

    def shown(self, logs: dict | None) -> dict | None:
        if not logs:
            return logs
        return {self.NAMES.get(key, key): value for key, value in logs.items()
                if not (key.endswith("loss") and key[:-4] + "nats" in logs)}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self.shown(logs))

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(batch, self.shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self.shown(logs))

    def on_test_end(self, logs=None):
        super().on_test_end(self.shown(logs))


class LearningRateLog(keras.callbacks.Callback):
    """Adds the optimizer's ``learning_rate`` to the epoch logs (history and TensorBoard)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


class SampleText(keras.callbacks.Callback):
    """After every epoch, a text sampled from the model as it stands (generator runs), with
    the run's ``[generate]`` prime, temperature, top-k and top-p: appended to the run's
    ``samples.json`` and logged to TensorBoard."""

    def __init__(self, run, components, preprocessor, vocab, generate: dict, length: int,
                 log_dir: Path | None = None):
        super().__init__()
        self.run, self.components, self.preprocessor, self.vocab = (run, components,
                                                                   preprocessor, vocab)
        self.prime, self.length, self.log_dir = generate["prime"], length, log_dir
        self.sampling = {key: generate[key] for key in ("temperature", "top_k", "top_p")}

    def on_epoch_end(self, epoch, logs=None):
        from toolkit.errors import ToolkitError
        from toolkit.generate.sampling import Generator
        from toolkit.model.assembly import inference_twin

        if not hasattr(self, "generator"):  # built and traced once, weights copied each epoch
            twin = inference_twin(self.model, self.components, len(self.vocab), 1)
            self.generator = Generator(self.preprocessor, self.vocab, twin, 1)
            self.generator.compile()
            try:
                self.generator.encode_prime(self.prime)
            except ToolkitError:  # the configured prime has tokens this text never had
                self.prime = self.preprocessor.detokenize([self.vocab.tokens[2]])
        else:
            self.generator.twin.set_weights(self.model.get_weights())
        text = self.generator.generate(self.prime, self.length, include_prime=True,
                                       **self.sampling)[0]
        path = self.run.file(runs.SAMPLES)
        samples = json.loads(path.read_text()) if path.is_file() else []
        samples = [s for s in samples if s["epoch"] < epoch] + [{"epoch": epoch, "text": text}]
        runs.write_json(path, samples)
        if self.log_dir is not None:
            import tensorflow as tf

            with tf.summary.create_file_writer(str(self.log_dir / "samples")).as_default():
                tf.summary.text("sample", text, step=epoch)


class TimeLimit(keras.callbacks.Callback):
    """Stops training after the epoch in which the training time passes ``minutes``."""

    def __init__(self, minutes: float, clock: TrainingClock):
        super().__init__()
        self.minutes, self.clock = minutes, clock
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and self.clock.seconds >= self.minutes * 60:
            self.model.stop_training = self.stopped = True
