"""Preprocessing: an ordered chain of stages from a document's text to its tokens.

Stages before the tokenizer map text to text (lowercase, normalisation); the
tokenizer maps text to tokens; stages after it map tokens to tokens (stop-word
removal). The chain is checked before any text is read. A corpus that takes more than
half a second is preprocessed on every core (:func:`tokenize_documents`).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from toolkit.errors import ConfigError
from toolkit.hookspecs import Document, Kind, Stage

PARALLEL_AFTER = 0.5  # seconds of preprocessing in this process before workers start
# Stages faster than this (characters a second, in those first seconds) keep to this
# process: handing a text to a worker and its tokens back costs more than running them.
SERIAL_ABOVE = 8e6
# Documents handed to workers and not yet back: at least two per worker, more (up to
# MAX_PENDING per worker) while their text is under IN_FLIGHT characters, so that one
# long document does not leave the other workers idle.
IN_FLIGHT = 32_000_000
MAX_PENDING = 64


def check_chain(stages: Sequence[Stage], names: Sequence[str], source: str | None = None):
    """Refuse a chain whose stages do not fit one after the other or that never tokenizes."""
    current: Kind = "text"
    for i, (stage, name) in enumerate(zip(stages, names)):
        if stage.consumes != current:
            hint = ("put text stages before the tokenizer" if current == "tokens"
                    else "add a tokenizer stage (such as \"chars\") before it")
            raise ConfigError(f"preprocess.{i}", f"stage {name!r} works on {stage.consumes}, "
                                                 f"but it receives {current}; {hint}", source)
        current = stage.produces
    if current != "tokens":
        raise ConfigError("preprocess", "the chain never splits text into tokens; add a "
                                        "tokenizer stage such as { use = \"chars\" }", source)


class Preprocessor:
    """A checked chain of stages, applied in config order."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)
        self.tokenizer = next(s for s in self.stages if s.produces == "tokens"
                              and s.consumes == "text")

    def __call__(self, text: str) -> Sequence[str]:
        """The tokens of ``text``: a list, or a ``str`` when every token is one character
        (a str is a sequence of one-character tokens, and far cheaper to count and encode)."""
        value = text
        for stage in self.stages:
            if stage.consumes == "tokens" and isinstance(value, str):
                value = list(value)  # token stages always receive a list
            value = stage(value)
        return value if isinstance(value, str) else list(value)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self.tokenizer.detokenize(tokens)

    @property
    def unit(self) -> str:
        """What the tokens are: ``"characters"``, ``"words"`` (the tokenizer's ``unit``)."""
        return self.tokenizer.unit


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def start_method() -> str:
    """``fork`` (workers start at once, sharing the stages as they are) unless TensorFlow
    is loaded, whose threads a fork would copy mid-flight; then ``spawn``."""
    if "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules:
        return "fork"
    return "spawn"


def tokenize_documents(documents: Iterable[Document], preprocessor: Preprocessor,
                       workers: int = 1) -> Iterator[tuple[Document, Sequence[str]]]:
    """``(document, tokens)`` for every document, in corpus order.

    Documents are preprocessed in this process for the first :data:`PARALLEL_AFTER`
    seconds; a corpus that takes longer is handed to ``workers`` processes (``0``: one per
    core), each document whole, unless its stages ran faster than :data:`SERIAL_ABOVE`
    characters a second (then sending texts costs more than it saves). What is in flight
    is at most :data:`IN_FLIGHT` characters of text or two documents per worker,
    whichever is more, and never more than :data:`MAX_PENDING` documents per worker, so
    memory stays bounded. The tokens
    are the same either way: only the stages run elsewhere. Stages that cannot be sent
    to a spawned process keep to this one.
    """
    workers = workers or available_cores()
    documents = iter(documents)
    start, characters = time.perf_counter(), 0
    for document in documents:
        yield document, preprocessor(document.text)
        characters += len(document.text)
        del document  # before the next is read: one text in memory at a time
        elapsed = time.perf_counter() - start
        if workers > 1 and elapsed >= PARALLEL_AFTER:
            if characters / max(elapsed, 1e-9) > SERIAL_ABOVE:  # cheap stages: stay here
                yield from in_this_process(documents, preprocessor)
                return
            break
    else:
        return
    pool = worker_pool(preprocessor, workers)
    if pool is None:
        yield from in_this_process(documents, preprocessor)
        return
    pending: deque = deque()  # [document, its future], in corpus order
    in_flight = 0  # characters of the pending documents
    try:
        for document in documents:
            pending.append([document, None])
            pending[-1][1] = pool.submit(preprocess_in_worker, document.text)
            in_flight += len(document.text)
            while len(pending) > 2 * workers and (in_flight > IN_FLIGHT or
                                                  len(pending) > MAX_PENDING * workers):
                in_flight -= len(pending[0][0].text)
                yield finished(pending, preprocessor)
        while pending:
            yield finished(pending, preprocessor)
    except (BrokenProcessPool, OSError) as error:
        # A worker could not start (no memory or processes left; spawn re-imports a main
        # script that has no ``if __name__ == "__main__"`` guard) or died: finish here.
        print(f"preprocessing: worker processes stopped ({error}); going on in this "
              f"process (train.preprocess_workers = 1 avoids them)", file=sys.stderr)
        yield from in_this_process([document for document, _ in pending], preprocessor)
        pending.clear()
        yield from in_this_process(documents, preprocessor)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def in_this_process(documents: Iterable[Document], preprocessor: Preprocessor):
    for document in documents:
        yield document, preprocessor(document.text)
        del document  # before the next is read: one text in memory at a time


def worker_pool(preprocessor: Preprocessor, workers: int) -> ProcessPoolExecutor | None:
    if multiprocessing.current_process().daemon:  # a pool's worker may not have children
        return None
    method = start_method()
    if method != "fork":
        try:
            pickle.dumps(preprocessor)
        except Exception:  # a plugin stage holding something unpicklable: stay serial
            return None
    return ProcessPoolExecutor(workers, multiprocessing.get_context(method),
                               initializer=start_worker, initargs=(preprocessor,))


class Failed:
    """A worker's stages raised: the parent runs the document again to raise it there."""


WORKER_PREPROCESSOR: Preprocessor | None = None


def start_worker(preprocessor: Preprocessor) -> None:
    global WORKER_PREPROCESSOR
    WORKER_PREPROCESSOR = preprocessor


def preprocess_in_worker(text: str):
    try:
        return WORKER_PREPROCESSOR(text)
    except Exception:  # its exception may not survive pickling; the parent repeats the call
        return Failed()


def finished(pending: deque, preprocessor: Preprocessor):
    """The first pending document and its tokens, taken off ``pending`` once they are in
    hand (a broken pool leaves it there to be done again)."""
    document, future = pending[0]
    tokens = future.result()
    if isinstance(tokens, Failed):
        tokens = preprocessor(document.text)
    pending.popleft()
    return document, tokens
