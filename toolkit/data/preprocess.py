"""Preprocessing: an ordered chain of stages from a document's text to its tokens.

Stages before the tokenizer map text to text (lowercase, normalisation); the
tokenizer maps text to tokens; stages after it map tokens to tokens (stop-word
removal). The chain is checked before any text is read. A corpus that takes more than
half a second is preprocessed on every core (:func:`tokenize_documents`), a long
document in pieces when every stage allows it (``Stage.piecewise``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from toolkit.errors import ConfigError
from toolkit.hookspecs import Document, Kind, Stage
from toolkit.data.tokenstore import NumberedTokens

PARALLEL_AFTER = 0.5  # seconds of preprocessing in this process before workers start
# Stages faster than this (characters a second, in those first seconds) keep to this
# process: handing a text to a worker and its tokens back costs more than running them.
SERIAL_ABOVE = 8e6
# Documents handed to workers and not yet back: at least two per worker, more (up to
# MAX_PENDING per worker) while their text is under IN_FLIGHT characters, so that one
# long document does not leave the other workers idle.
IN_FLIGHT = 32_000_000
MAX_PENDING = 64
# A document longer than this (characters) goes to the workers in pieces of about this
# size, cut after blank lines, when every stage is ``piecewise``.
PIECE = 500_000
BLANK_LINE = re.compile(r"\n\s*\n")  # a piece ends where a match of this ends


def check_chain(stages: Sequence[Stage], names: Sequence[str], config_file: str | None = None):
    """Refuse a chain whose stages do not fit one after the other or that never tokenizes."""
    current: Kind = "text"
    for i, (stage, name) in enumerate(zip(stages, names)):
        if stage.consumes != current:
            hint = ("put text stages before the tokenizer" if current == "tokens"
                    else "add a tokenizer stage (such as \"chars\") before it")
            raise ConfigError(f"preprocess.{i}", f"stage {name!r} works on {stage.consumes}, "
                                                 f"but it receives {current}; {hint}", config_file)
        current = stage.produces
    if current != "tokens":
        raise ConfigError("preprocess", "the chain never splits text into tokens; add a "
                                        "tokenizer stage such as { use = \"chars\" }", config_file)


class Preprocessor:
    """A checked chain of stages, applied in config order."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)
        self.tokenizer = next(s for s in self.stages if s.produces == "tokens"
                              and s.consumes == "text")

    def __call__(self, text: str) -> Sequence[str]:
        """The tokens of ``text``: a list, or a ``str`` when every token is one character
        (a str is a sequence of one-character tokens, and far cheaper to count and encode)."""
        return self.piece(text)[0]

    def piece(self, text: str) -> tuple[Sequence[str], bool]:
        """The tokens of ``text`` (as :meth:`__call__`), and whether the tokenizer gave any
        (before the token stages): what :meth:`join` needs of a piece of a document."""
        value, tokenized = text, False
        for stage in self.stages:
            if stage.consumes == "tokens" and isinstance(value, str):
                value = list(value)  # token stages always receive a list
            value = stage(value)
            if stage is self.tokenizer:
                tokenized = len(value) > 0
        return (value if isinstance(value, str) else list(value)), tokenized

    @property
    def piecewise(self) -> bool:
        """Whether every stage lets a document be preprocessed in pieces (``Stage.piecewise``)."""
        return all(stage.piecewise for stage in self.stages)

    def pieces(self, text: str, size: int | None = None) -> Iterator[str]:
        """``text`` whole, or, when it is longer than ``size`` (:data:`PIECE`) and the chain
        is :attr:`piecewise`, cut after the first blank line past every ``size`` characters."""
        size = size or PIECE
        start = 0
        if self.piecewise:
            while len(text) - start > size:
                found = BLANK_LINE.search(text, start + size)
                if found is None or found.end() == len(text):
                    break
                yield text[start:found.end()]
                start = found.end()
        yield text[start:] if start else text

    def join(self, results: Sequence[tuple[Sequence[str], bool]]) -> Sequence[str]:
        """A document's tokens from its pieces' :meth:`piece` results, in order: the
        tokenizer's ``between_pieces`` (through the token stages) go between two pieces
        that each gave tokens."""
        if len(results) == 1:
            return results[0][0]
        between, parts, started = self.between_pieces, [], False
        for tokens, tokenized in results:
            if tokenized and started and len(between):
                parts.append(between)
            started = started or tokenized
            parts.append(tokens)
        if all(isinstance(part, str) for part in parts):
            return "".join(parts)
        return NumberedTokens.joined([part if isinstance(part, NumberedTokens)
                                      else NumberedTokens.of(part) for part in parts])

    @functools.cached_property
    def between_pieces(self) -> Sequence[str]:
        value = list(self.tokenizer.between_pieces)
        for stage in self.stages[self.stages.index(self.tokenizer) + 1:]:
            value = stage(value)
        return value

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
    core) unless its stages ran faster than :data:`SERIAL_ABOVE` characters a second
    (then sending texts costs more than it saves). A document goes whole, or in pieces
    of about :data:`PIECE` characters when it is longer and every stage is ``piecewise``
    (so one long book keeps every core busy); what is in flight is bounded
    (:class:`Handed`). The tokens are the same either way: only the stages run
    elsewhere. Stages that cannot be sent to a spawned process keep to this one.
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
    handed = Handed(pool, preprocessor)
    try:
        for document in documents:
            pieces = preprocessor.pieces(document.text)
            piece = next(pieces)
            for following in pieces:
                handed.hand_out(document, piece, last=False)
                yield from handed.take_back(workers)
                piece = following
            handed.hand_out(document, piece, last=True)
            del piece, pieces
            yield from handed.take_back(workers)
        yield from handed.take_back(workers, everything=True)
    except PoolStopped as stopped:
        # A worker could not start (no memory or processes left; spawn re-imports a main
        # script that has no ``if __name__ == "__main__"`` guard) or died: finish here.
        print(f"preprocessing: worker processes stopped ({stopped.__cause__}); going on in "
              f"this process (train.preprocess_workers = 1 avoids them)", file=sys.stderr)
        yield from in_this_process(handed.unfinished(), preprocessor)
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
        tokens, tokenized = WORKER_PREPROCESSOR.piece(text)
        if not isinstance(tokens, str):  # far less to pickle than a string per token
            tokens = NumberedTokens.of(tokens)
        return tokens, tokenized
    except Exception:  # its exception may not survive pickling; the parent repeats the call
        return Failed()


class Handed:
    """Pieces of documents handed to the workers and not yet taken back, in corpus order.

    What is in flight is at most :data:`IN_FLIGHT` characters of text or two pieces per
    worker, whichever is more, and never more than :data:`MAX_PENDING` pieces per worker.
    """

    def __init__(self, pool: ProcessPoolExecutor, preprocessor: Preprocessor):
        self.pool, self.preprocessor = pool, preprocessor
        self.pieces: deque = deque()  # (document, future, characters, its last piece?)
        self.characters = 0
        self.taken: list = []  # results of the first document's pieces taken back so far

    def hand_out(self, document: Document, piece: str, last: bool) -> None:
        # Listed before it is submitted: a pool that breaks in ``submit`` leaves it to be
        # done again.
        entry = [document, None, len(piece), last]
        self.pieces.append(entry)
        self.characters += len(piece)
        try:
            entry[1] = self.pool.submit(preprocess_in_worker, piece)
        except (BrokenProcessPool, OSError) as error:
            raise PoolStopped from error

    def take_back(self, workers: int, everything: bool = False):
        """``(document, tokens)`` for each document completed while taking pieces back,
        until what is in flight is within bounds (or nothing is, with ``everything``)."""
        while self.pieces and (everything or len(self.pieces) > 2 * workers and (
                self.characters > IN_FLIGHT or len(self.pieces) > MAX_PENDING * workers)):
            done = take(self)
            if done is not None:
                yield done

    def unfinished(self) -> list[Document]:
        """The documents not yet taken back whole, in order (to be done again)."""
        documents: list[Document] = []
        starts = True  # the next entry is a document's first piece
        for document, _, _, last in self.pieces:
            if starts:
                documents.append(document)
            starts = last
        self.pieces.clear()
        self.taken = []
        return documents


class PoolStopped(Exception):
    """The worker pool broke (a worker died or could not start); its error is the cause.
    Only the pool's own failures become this: a stage's error, even an ``OSError``, is
    raised as it is."""


def take(handed: Handed):
    """The oldest piece's tokens taken back; ``(document, tokens)`` when it was its
    document's last piece, else ``None``. A broken pool leaves the piece in ``handed``."""
    document, future, characters, last = handed.pieces[0]
    try:
        result = future.result()
    except (BrokenProcessPool, OSError) as error:
        raise PoolStopped from error
    handed.pieces.popleft()
    handed.characters -= characters
    handed.taken.append(result)
    if not last:
        return None
    results, handed.taken = handed.taken, []
    if any(isinstance(r, Failed) for r in results):
        return document, handed.preprocessor(document.text)  # its own error, raised here
    return document, handed.preprocessor.join(results)
