"""The founding question's alphabet example (../shared/seed/), both ways.

Trained the seed's way (batch 1, one letter per step, the letter as one scaled
number, every epoch starting at "A") the model learns positions: started at "M" it
says "B". Trained the toolkit's way (one-hot letters, a random start every epoch) it
predicts the next letter from any starting letter.
"""

from pathlib import Path

import numpy as np
import pytest

from toolkit.generate.sampling import Generator
from toolkit.training.phases import train

CONFIG = Path(__file__).parents[1] / "configs" / "alphabet.toml"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def next_letter(generator, context):
    distribution = generator.prime(generator.encode_prime(context))[0]
    return generator.vocab.tokens[int(np.argmax(distribution))]


@pytest.fixture(scope="module")
def seed_way(tmp_path_factory):
    run = train(str(CONFIG), tmp_path_factory.mktemp("seed") / "run",
                ["sequences.offset=none", "encoder.use=scaled-id"], verbose=0)
    return Generator.from_run(run.path)


def test_the_seed_way_learns_positions_not_letters(seed_way):
    assert next_letter(seed_way, "A") == "B"
    assert next_letter(seed_way, "M") == "B", "the seed's finding: M -> B"


def test_priming_with_the_real_context_rescues_the_seed_way(seed_way):
    assert next_letter(seed_way, LETTERS[:LETTERS.index("M") + 1]) == "N"


def test_the_toolkit_way_predicts_the_next_letter_from_any_start(tmp_path):
    run = train(str(CONFIG), tmp_path / "run", verbose=0)
    generator = Generator.from_run(run.path)
    correct = [letter for letter, following in zip(LETTERS, LETTERS[1:])
               if next_letter(generator, letter) == following]
    assert len(correct) == 25, f"correct from: {''.join(correct)}"
    assert generator.generate("K", length=5, top_k=1)[0] == "LMNOP"
