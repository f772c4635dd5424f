"""The Python API: train a run and use it from a notebook or a script.

    import toolkit

    run = toolkit.train({"corpus": {"use": "tinyshakespeare"}, ...}, run_dir="runs/demo")
    run = toolkit.open_run("runs/demo")
    run.generate(prime="ROMEO:", length=200)
    run.history[-1]["val_nats"]

Errors are :class:`toolkit.ToolkitError` with the messages the CLI prints. Importing
:mod:`toolkit` loads neither TensorFlow nor any plugin; the first call that needs them
does, quietly.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from toolkit.errors import ToolkitError
from toolkit.runs.rundir import Run


class TrainedRun(Run):
    """A run opened from Python: what :class:`toolkit.runs.rundir.Run` holds (``history``,
    ``metrics()``, ``config``, ``model``, ...), and what the ``generate``, ``attribute``
    and ``evaluate`` commands do, as methods."""

    def generate(self, prime: str | None = None, length: int | None = None,
                 samples: int | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, include_prime: bool = False,
                 author: str | None = None) -> list[str]:
        """``samples`` texts continuing ``prime``; unset options take the run's
        ``[generate]`` defaults, checked as ``toolkit generate`` checks its flags.
        ``author`` writes in one author's style with an author-lms run."""
        from toolkit.config import params
        from toolkit.config.schema import generate_settings

        given = {"prime": prime, "length": length, "samples": samples,
                 "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
        options = {**self.config.generate, **{k: v for k, v in given.items()
                                                 if v is not None}}
        options = params.validate(generate_settings, options, "generate")
        generator = self.generator(options.pop("samples"), author)
        return generator.generate(options.pop("prime"), include_prime=include_prime,
                                  **{k: options.get(k) for k in ("length", "temperature",
                                                                 "top_k", "top_p", "seed")})

    def generator(self, samples: int = 1, author: str | None = None):
        """The run's :class:`toolkit.generate.sampling.Generator` for ``samples`` parallel texts
        (for one ``author`` of an author-lms run), built once per both."""
        from toolkit.generate.sampling import Generator

        if (samples, author) not in self.generators:
            self.generators[samples, author] = Generator.from_run(self, samples, author)
        return self.generators[samples, author]

    @cached_property
    def generators(self) -> dict:
        """The generators built so far, by number of samples and author."""
        return {}

    def attribute(self, texts: str | Sequence[str], model: str = "lstm") -> list:
        """Rank the run's authors for each text and answer (an author, or ``unknown``):
        :class:`toolkit.attribution.attribute.Attribution`s. ``model = "ensemble"`` stacks the
        n-gram model as training (or ``toolkit calibrate``) fitted it."""
        from toolkit.attribution.attribute import Attributor

        texts = [texts] if isinstance(texts, str) else list(texts)
        attributor = Attributor(self, model)
        return [attributor.attribute_text(text, f"text {i + 1}") for i, text in enumerate(texts)]

    def evaluate(self, split: str | None = None, baseline: bool = True,
                 unseen_author: bool = False) -> dict:
        """The report of ``toolkit evaluate`` (also written to ``evaluation.json``)."""
        from toolkit.attribution.evaluate import evaluate

        return evaluate(self, split, baseline, unseen_author)


def open_run(path: str | Path) -> TrainedRun:
    """Open a trained run directory."""
    return TrainedRun.open(path)


def train(config: dict[str, Any] | str | Path, run_dir: str | Path,
          overrides: Sequence[str] = (), resume: bool = False, overwrite: bool = False,
          verbose: int | str = 0) -> TrainedRun:
    """Train a run from a config (a dict laid out like a config file, or a file's path)
    into ``run_dir``; ``overrides`` are ``"section.key=value"`` strings as ``--set`` takes.
    Returns the opened run."""
    from toolkit.training.phases import train as train_run

    if isinstance(config, Mapping) and not isinstance(config, dict):
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if not isinstance(config, (dict, str, Path)):
        raise ToolkitError(f"config: expected a dict or the path of a TOML file, received "
                           f"{type(config).__name__}")
    run = train_run(config, run_dir, list(overrides), resume=resume, verbose=verbose,
                    overwrite=overwrite)
    return TrainedRun(run.path)


def crossval(config: dict[str, Any] | str | Path, folds: int | str, out: str | Path,
             overrides: Sequence[str] = (), verbose: int | str = 0) -> dict:
    """Cross-validate an attribution config over documents (``toolkit crossval``): one
    run per fold in ``out``, every document tested once; returns ``crossval.json``'s
    summary (every model's figures with 95 % intervals, the comparisons with the best
    classic baseline, the open set). Run again, it continues where it stopped."""
    from toolkit.attribution.crossval import parse_folds
    from toolkit.training.crossval import crossval as run_crossval

    return run_crossval(config, parse_folds(str(folds)), list(overrides), out,
                        verbose=verbose, say=lambda line: None)
