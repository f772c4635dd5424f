"""Small trained runs for the export and serving tests: a character generator and a
three-author author-lms run, each trained in seconds."""

import json
import random
from pathlib import Path

from tests.conftest import write_tiny_config
from toolkit.cli import main

AUTHOR_WORDS = {
    "ann": "the cat sat on the mat and the rat sat on the hat".split(),
    "bob": "a dog ran in the fog to a log by a bog".split(),
    "cy": "to be or not to be is to see or not to see".split(),
}


def author_text(author: str, words: int, seed: int) -> str:
    rng = random.Random(f"{author}-{seed}")
    vocabulary = AUTHOR_WORDS[author]
    sentences, sentence = [], []
    for _ in range(words):
        sentence.append(rng.choice(vocabulary))
        if len(sentence) >= rng.randint(5, 9):
            sentences.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    return " ".join(sentences)


def train_generator(folder: Path) -> Path:
    config = write_tiny_config(folder, "epochs = 2\nlearning_rate = 0.01",
                               '[generate]\nprime = "To be"\ntemperature = 0.8')
    assert main(["train", str(config), "--run-dir", str(folder / "hamlet")]) == 0
    return folder / "hamlet"


def train_author_lms(folder: Path) -> Path:
    corpus = folder / "authors.jsonl"
    corpus.write_text("\n".join(
        json.dumps({"text": author_text(author, 700, seed), "label": author,
                    "name": f"{author}-{seed}"})
        for author in AUTHOR_WORDS for seed in (1, 2)) + "\n")
    (folder / "authors.toml").write_text(f"""
[corpus]
use = "jsonl"
path = "{corpus}"
name_field = "name"
[[preprocess]]
use = "chars"
[encoder]
use = "embedding"
dim = 8
[sequences]
use = "passages"
length = 40
batch_size = 16
[core]
units = 16
[head]
use = "author-lms"
[train]
epochs = 2
learning_rate = 0.02
""")
    assert main(["train", str(folder / "authors.toml"), "--run-dir",
                 str(folder / "authors")]) == 0
    return folder / "authors"
