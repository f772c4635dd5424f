"""Built-in sequence builder for attribution: labelled passages, padded, masked and weighted."""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter, defaultdict
from typing import Annotated, Literal

import numpy as np

from toolkit.splits import Segment, Split, document_folds
from toolkit.errors import ConfigError
from toolkit.hookspecs import hookimpl
from toolkit.config.params import Fraction, NonNegativeInt, PositiveInt, Table
from toolkit.hookspecs import EpochData, Passages, SequenceBuilder
from toolkit.data.vocab import PAD

TARGETS = ("next-token", "label", "next-token-by-label")
SPLIT_ROW = re.compile(r"#\d+/\d+$")  # a segment cut into several rows (see passages_from_split)


def split_settings(by: Literal["region", "passage", "document"] = "region",
                   test: Fraction = 0.2, gap: NonNegativeInt | None = None,
                   min_documents: PositiveInt = 1, unseen_authors: list[str] = (),
                   folds: PositiveInt | None = None, fold: NonNegativeInt = 0):
    """How passages are split (``train.validation_fraction`` is the validation share).

    ``by = "region"``: every document is cut into contiguous regions, train first,
    then validation, then the last ``test`` fraction, with ``gap`` tokens (default:
    one passage) dropped between regions. ``"passage"``: passages are dealt to the
    splits at random, stratified by author. ``"document"``: one whole document per
    author is the test set (cross-work attribution); validation is the tail of
    the remaining documents. Authors with fewer than ``min_documents`` documents
    are left out of every split (``"document"`` needs 2); only ``[pretrain]`` reads
    their text. The documents of ``unseen_authors`` are kept out of everything the run
    trains on, pretraining included: strangers on which ``toolkit evaluate
    --unseen-author`` measures the "unknown" answer (a leave-these-authors-out test).
    ``folds = K`` with ``by = "document"`` deals the documents into K folds (each
    author's in turn, see :func:`toolkit.splits.document_folds`) and tests on the
    documents of fold number ``fold`` (0 to K - 1) instead of one per author: what
    ``toolkit crossval`` trains, one run per fold."""


SplitTable = Annotated[dict, Table(split_settings)]


def passages_from_split(split: Split, length: int, labels: list[str],
                        class_weight: str = "none") -> Passages:
    """A split's segments as a padded id matrix with label indices and per-passage weights.

    A segment longer than ``length`` ids (a passage planned in words that became more
    WordPiece pieces) is cut into equal rows of at most ``length``, so every id planned
    is fed. ``class_weight = "balanced"`` weights the rows by their authors' shares."""
    index = {label: i for i, label in enumerate(labels)}
    rows, row_labels, places = [], [], []
    for ids, label, place in zip(split.ids, split.labels, split.places):
        count = max(1, -(-len(ids) // length))
        bounds = np.linspace(0, len(ids), count + 1).round().astype(int)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            rows.append(ids[a:b])
            row_labels.append(label)
            places.append(place if count == 1 else f"{place}#{i + 1}/{count}")
    matrix = np.zeros((len(rows), length), np.int32)
    for r, row in enumerate(rows):
        matrix[r, :len(row)] = row
    label_ids = np.array([index.get(label, -1) for label in row_labels], np.int32)
    if labels and (label_ids < 0).any():
        unknown = sorted({l for l, i in zip(row_labels, label_ids) if i < 0}, key=str)
        raise ConfigError("corpus", f"labels {unknown} appear outside the training split; "
                                    f"every author needs training text")
    shares = balanced_weights(row_labels) if class_weight == "balanced" else {}
    weights = np.array([shares.get(label, 1.0) for label in row_labels], np.float32)
    return Passages(matrix, label_ids.reshape(-1), weights, places)


def balanced_weights(labels: list[str]) -> dict[str, float]:
    """scikit-learn's "balanced" class weights: n_samples / (n_classes * n_samples_of_class)."""
    counts = Counter(labels)
    return {label: len(labels) / (len(counts) * n) for label, n in counts.items()}


def contiguous_runs(passages: Passages):
    """Passages that follow one another in a document, joined into runs of ids: for each
    run its ids, and for each passage ``(run, start in the run, length)``. ``None`` when
    the places do not say where passages lie (rows cut further, or no places)."""
    if len(passages.places) != len(passages) or any(SPLIT_ROW.search(s)
                                                      for s in passages.places):
        return None
    runs, rows, previous = [], [], None
    for place, row in zip(passages.places, passages.ids):
        document, span = place.rsplit(":", 1)
        start, stop = map(int, span.split("-"))
        ids = row[:np.count_nonzero(row)]  # right-padded with PAD = 0
        if previous == (document, start):
            rows.append((len(runs) - 1, len(runs[-1]), len(ids)))
            runs[-1] = np.concatenate([runs[-1], ids])
        else:
            rows.append((len(runs), 0, len(ids)))
            runs.append(ids)
        previous = (document, stop)
    return runs, np.array(rows, np.int64).reshape(-1, 3)


class PassageData(EpochData):
    """Batches of passages, shuffled anew each epoch when a seed is given.

    The targets depend on the head: the passage's author (``"label"``), the next
    token at every position (``"next-token"``), or the next token together with
    the author as a second input (``"next-token-by-label"``). With ``crops =
    "random"`` (training only) the passages of each contiguous run of text are moved
    together by a random shift in ``[-length/2, length/2)`` each epoch (kept inside the
    run), so the model sees fresh cuts of the same text: as many passages, of the same
    lengths and labels, every epoch.
    """

    def __init__(self, passages: Passages, batch_size: int, target: str, seed=None,
                 crops: str = "fixed"):
        super().__init__()
        self.passages, self.batch_size, self.target, self.seed = passages, batch_size, target, seed
        self.length = passages.ids.shape[1]
        self.runs = contiguous_runs(passages) if crops == "random" and seed is not None else None
        self.ids = passages.ids
        self.order = self.shuffled()

    def cropped(self) -> np.ndarray:
        """This epoch's passages: each run's passages shifted together, inside the run."""
        runs, rows = self.runs
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        half = self.length // 2
        shifts = rng.integers(-half, half, size=len(runs)) if half else np.zeros(len(runs), int)
        ids = np.zeros_like(self.passages.ids)
        for r, (run, start, size) in enumerate(rows):
            begin = min(max(start + shifts[run], 0), len(runs[run]) - size)
            ids[r, :size] = runs[run][begin:begin + size]
        return ids

    def shuffled(self):
        rows = np.arange(len(self.passages))
        if self.seed is None:
            return rows
        return np.random.default_rng([self.seed, self.epoch]).permutation(rows)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.order = self.shuffled()
        if self.runs is not None:
            self.ids = self.cropped()

    def __len__(self):
        return math.ceil(len(self.passages) / self.batch_size)

    def __getitem__(self, k):
        rows = self.order[k * self.batch_size:(k + 1) * self.batch_size]
        ids, weights = self.ids[rows], self.passages.weights[rows]
        if self.target == "label":
            return ids, self.passages.labels[rows], weights
        x, y = ids[:, :-1], ids[:, 1:]
        w = (y != PAD) * weights[:, None]
        if self.target == "next-token":
            return x, y, w.astype(np.float32)
        return {"tokens": x, "author": self.passages.labels[rows]}, y, w.astype(np.float32)

    def signature(self):
        import tensorflow as tf

        per_row = tf.TensorSpec((None,), tf.int32)
        if self.target == "label":
            tokens = tf.TensorSpec((None, self.length), tf.int32)
            return tokens, per_row, tf.TensorSpec((None,), tf.float32)
        n = self.length - 1
        tokens = tf.TensorSpec((None, n), tf.int32)
        x = tokens if self.target == "next-token" else {"tokens": tokens, "author": per_row}
        return x, tf.TensorSpec((None, n), tf.int32), tf.TensorSpec((None, n), tf.float32)


def paragraph_ends(tokens: list[str]) -> list[int]:
    """Positions just after each paragraph break, in order.

    A break is two ``"\n"`` tokens in a row (a blank line in a character stream) or,
    in a stream that never has two in a row (NLTK words mark each paragraph with one
    ``"\n"`` token), a single ``"\n"``.
    """
    newlines = [i for i, token in enumerate(tokens) if token == "\n"]
    after_newline = {i + 1 for i in newlines}
    doubled = {i for i in newlines if i in after_newline}
    return [i + 1 for i in (sorted(doubled) if doubled else newlines)]


class PassageBuilder(SequenceBuilder):
    """Labelled passages of up to ``length`` tokens for attribution, state reset for each.

    Documents are cut into passages of ``length`` tokens, or with ``cut =
    "paragraphs"`` into runs of whole paragraphs of up to ``length`` tokens (a longer
    paragraph is cut in pieces). A passage shorter than ``min_length`` (default half
    a passage) is dropped. ``crops = "random"`` cuts the training text afresh every
    epoch (see :class:`PassageData`); validation and test passages stay fixed. Passages are right-padded with id 0, which the encoder masks. ``class_weight = "balanced"`` weights each
    training passage by n / (authors x passages of its author), so a long book
    does not outvote a short one. The split (``[sequences.split]``) never puts one
    token in two splits and is reproducible from ``train.seed``.
    """

    stateful = False

    def __init__(self, batch_size: PositiveInt = 32, length: PositiveInt = 100,
                 min_length: PositiveInt | None = None,
                 cut: Literal["tokens", "paragraphs"] = "tokens",
                 class_weight: Literal["balanced", "none"] = "balanced",
                 crops: Literal["fixed", "random"] = "fixed",
                 split: SplitTable = None):
        self.batch_size, self.length = batch_size, length
        self.min_length = min_length or max(1, length // 2)
        if self.min_length > length:
            raise ValueError(f"min_length = {min_length} is longer than length = {length}")
        self.class_weight, self.cut_by, self.crops = class_weight, cut, crops
        self.paragraphs: dict[int, list[int]] = {}
        split = split or {}
        self.split_by = split.get("by", "region")
        self.test_fraction = split.get("test", 0.2)
        self.gap = length if split.get("gap") is None else split["gap"]
        self.min_documents = split.get("min_documents", 1)
        self.unseen_authors = list(split.get("unseen_authors", ()))
        self.folds, self.fold = split.get("folds"), split.get("fold", 0)
        if self.folds is not None:
            if self.split_by != "document":
                raise ValueError(f"split.folds holds out whole documents: it needs "
                                 f"split.by = \"document\", not {self.split_by!r}")
            if self.folds < 2:
                raise ValueError(f"split.folds = {self.folds}: cross-validation needs 2 or "
                                 f"more folds")
            if self.fold >= self.folds:
                raise ValueError(f"split.fold = {self.fold} is not one of the {self.folds} "
                                 f"folds (0 to {self.folds - 1})")
        self.target = "label"

    def accept_head(self, head) -> None:
        if head.target not in TARGETS:
            raise ValueError(f"passages cannot give {head.target!r} targets; they give "
                             f"{', '.join(TARGETS)}")
        self.target = head.target

    def cut(self, document: int, start: int, stop: int) -> list[Segment]:
        """Passages from ``start`` to ``stop``; pieces under ``min_length`` are dropped."""
        if self.cut_by == "tokens":
            pieces = [(a, min(a + self.length, stop)) for a in range(start, stop, self.length)]
        else:
            ends = self.paragraphs[document]
            inside = ends[bisect.bisect_right(ends, start):bisect.bisect_left(ends, stop)]
            pieces, a, previous = [], start, start
            for end in [*inside, stop]:  # grow the passage paragraph by paragraph
                if end - a > self.length:
                    if previous > a:
                        pieces.append((a, previous))
                        a = previous
                    while end - a > self.length:
                        pieces.append((a, a + self.length))
                        a += self.length
                previous = end
            if stop > a:
                pieces.append((a, stop))
        return [Segment(document, a, b) for a, b in pieces if b - a >= self.min_length]

    def plan_split(self, documents, tokens, validation_fraction, seed):
        lengths = [len(t) for t in tokens]
        if self.cut_by == "paragraphs":
            self.paragraphs = {d: paragraph_ends(t) for d, t in enumerate(tokens)}
        if self.target != "next-token" or self.split_by == "document":
            unlabelled = [d.name for d in documents if d.label is None]
            if unlabelled:
                raise ConfigError("corpus", f"attribution needs a label (author) for every "
                                            f"document; {len(unlabelled)} have none, e.g. "
                                            f"{unlabelled[0]!r}. Give the corpus labels "
                                            f"(its reader's label setting, e.g. directory's "
                                            f"label_from = \"folder\")")
        if self.split_by != "document" and validation_fraction + self.test_fraction >= 1:
            raise ConfigError("sequences.split.test",
                              f"train.validation_fraction ({validation_fraction}) + test "
                              f"({self.test_fraction}) leave nothing to train on; keep "
                              f"their sum below 1")
        plan = {"train": [], "validation": [], "test": []}
        rng = np.random.default_rng(seed)
        unseen = set(self.unseen_documents(documents))
        kept = self.kept_documents(documents, unseen)
        if self.split_by == "region":
            for d, n in enumerate(lengths):
                if d not in kept:
                    continue
                self.regions(plan, d, n, validation_fraction, self.test_fraction)
        elif self.split_by == "passage":
            by_label = defaultdict(list)
            for d, n in enumerate(lengths):
                if d in kept:
                    by_label[documents[d].label].extend(self.cut(d, 0, n))
            for label in sorted(by_label, key=str):
                passages = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
                n_test = int(round(len(passages) * self.test_fraction))
                n_val = int(round(len(passages) * validation_fraction))
                plan["test"] += passages[:n_test]
                plan["validation"] += passages[n_test:n_test + n_val]
                plan["train"] += passages[n_test + n_val:]
        else:
            self.hold_out_documents(plan, documents, lengths, validation_fraction, rng, kept,
                                    seed)
        left_out = [Segment(d, 0, n) for d, n in enumerate(lengths)
                    if d not in kept and d not in unseen and n]
        if left_out:  # no split of the attribution; text a [pretrain] language model may read
            plan["left_out"] = left_out
        if unseen:  # strangers: read by nothing but `evaluate --unseen-author`
            plan["unseen"] = [s for d in sorted(unseen) for s in self.cut(d, 0, lengths[d])]
        for segments in plan.values():
            segments.sort(key=lambda s: (s.document, s.start))
        if not plan["train"]:
            raise ConfigError("sequences.length", f"no training passage of at least "
                                                  f"{self.min_length} tokens; lower length "
                                                  f"or min_length")
        return plan

    def regions(self, plan, d, n, validation_fraction, test_fraction, start=0):
        """Contiguous train, validation and test regions of document ``d`` with gaps between."""
        span = n - start
        train_end = start + int(span * (1 - validation_fraction - test_fraction))
        val_end = start + int(span * (1 - test_fraction))
        plan["train"] += self.cut(d, start, train_end)
        if validation_fraction:
            plan["validation"] += self.cut(d, train_end + self.gap, val_end)
        if test_fraction:
            plan["test"] += self.cut(d, val_end + self.gap, n)

    def kept_documents(self, documents, unseen: set[int]) -> set[int]:
        """The documents whose authors have at least ``min_documents`` documents, less the
        ``unseen`` ones."""
        counts = Counter(document.label for document in documents)
        kept = {d for d, document in enumerate(documents)
                if counts[document.label] >= self.min_documents and d not in unseen}
        if not kept:
            raise ConfigError("sequences.split.min_documents",
                              f"no author has {self.min_documents} documents (the most is "
                              f"{max(counts.values(), default=0)}); lower it")
        return kept

    def unseen_documents(self, documents) -> list[int]:
        """The documents of ``unseen_authors``, each name checked against the corpus."""
        if not self.unseen_authors:
            return []
        authors = sorted({str(d.label) for d in documents if d.label is not None})
        missing = [a for a in self.unseen_authors if a not in authors]
        if missing:
            raise ConfigError("sequences.split.unseen_authors",
                              f"{missing} are not authors of this corpus; its authors are "
                              f"{authors}")
        if len(set(authors) - set(self.unseen_authors)) < 2:
            raise ConfigError("sequences.split.unseen_authors",
                              f"{self.unseen_authors} leave fewer than 2 of the corpus's "
                              f"{len(authors)} authors to attribute; name fewer")
        return [d for d, document in enumerate(documents)
                if document.label is not None and str(document.label) in self.unseen_authors]

    def hold_out_documents(self, plan, documents, lengths, validation_fraction, rng, kept,
                           seed=1):
        by_label = defaultdict(list)
        for d, document in enumerate(documents):
            if d in kept:
                by_label[document.label].append(d)
        single = sorted(label for label, docs in by_label.items() if len(docs) < 2)
        if single:
            raise ConfigError("sequences.split.by",
                              f"\"document\" holds out a whole document per author, but "
                              f"{', '.join(single)} have only one; set "
                              f"sequences.split.min_documents = 2 to leave such authors out, "
                              f"or use split.by = \"region\"")
        if self.folds is not None:
            self.hold_out_fold(plan, documents, lengths, validation_fraction, kept, seed)
            return
        for label in sorted(by_label):
            docs = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
            plan["test"] += self.cut(docs[0], 0, lengths[docs[0]])
            for d in docs[1:]:
                self.regions(plan, d, lengths[d], validation_fraction, 0.0)

    def hold_out_fold(self, plan, documents, lengths, validation_fraction, kept, seed):
        """Test on the documents of fold ``self.fold``; train on (and validate on the tails
        of) the others."""
        ordered = sorted(kept)
        if self.folds > len(ordered):
            raise ConfigError("sequences.split.folds",
                              f"{self.folds} folds need at least {self.folds} documents of "
                              f"authors with {self.min_documents} or more; there are "
                              f"{len(ordered)}: choose at most {len(ordered)} folds")
        short = [documents[d].name for d in ordered if not self.cut(d, 0, lengths[d])]
        if short:  # it would test nothing, or leave a fold without an author's text
            raise ConfigError("sequences.min_length",
                              f"{len(short)} document(s) give no passage of "
                              f"{self.min_length} tokens (e.g. {short[0]!r}), so a fold "
                              f"would test nothing there; lower sequences.min_length or "
                              f"leave them out of the corpus")
        fold_of = document_folds([documents[d].label for d in ordered], self.folds, seed)
        for d, fold in zip(ordered, fold_of):
            if fold == self.fold:
                plan["test"] += self.cut(d, 0, lengths[d])
            else:
                self.regions(plan, d, lengths[d], validation_fraction, 0.0)

    def data(self, split, labels=(), training=False):
        """Padded passages with label indices; training passages carry the class weights."""
        weighted = training and self.class_weight == "balanced" and self.target != "next-token"
        return passages_from_split(split, self.length, list(labels),
                                   "balanced" if weighted else "none")

    def training(self, passages: Passages, seed):
        data = PassageData(passages, self.batch_size, self.target, seed, self.crops)
        if self.crops == "random" and data.runs is None:
            raise ConfigError("sequences.crops", "\"random\" needs each training passage "
                                                 "to be one row, but some were cut into "
                                                 "several (WordPiece pieces outnumber the "
                                                 "words planned); use crops = \"fixed\"")
        return data

    def validation(self, passages: Passages):
        return PassageData(passages, self.batch_size, self.target)

    def passages(self, ids):
        """A text's ids as right-padded passages of ``length`` tokens.

        A last piece shorter than ``min_length`` is dropped (training never saw one),
        unless it is the whole text. With ``cut = "paragraphs"`` the text is still cut
        every ``length`` tokens: an unseen text carries no paragraph plan."""
        count = max(1, -(-len(ids) // self.length))
        if count > 1 and len(ids) - (count - 1) * self.length < self.min_length:
            count -= 1
        passages = np.zeros((count, self.length), np.int32)
        for i in range(count):
            piece = ids[i * self.length:(i + 1) * self.length]
            passages[i, :len(piece)] = piece
        return passages

    def describe(self):
        return {"split_by": self.split_by, "cut": self.cut_by}


@hookimpl
def register_sequence_builders(register):
    register("passages", PassageBuilder)
