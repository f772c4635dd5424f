"""Corpus readers: labelled documents from files, folders, JSON Lines and CSV."""

from pathlib import Path

import pytest

from toolkit.default_plugins.corpora import CsvFile, JsonLines, TextDirectory
from toolkit.errors import ToolkitError


def test_a_folder_per_author_gives_labels(tmp_path):
    for author, book in [("austen", "emma.txt"), ("austen", "sense.txt"), ("blake", "poems.txt")]:
        (tmp_path / author).mkdir(exist_ok=True)
        (tmp_path / author / book).write_text(f"{book} text")
    documents = list(TextDirectory(str(tmp_path), label_from="folder").documents())
    assert [(d.name, d.label) for d in documents] == [
        ("austen/emma.txt", "austen"), ("austen/sense.txt", "austen"), ("blake/poems.txt", "blake")]


@pytest.mark.parametrize("pattern, expected", [
    ("*.txt", ["austen/emma.txt", "austen/old/lady.txt", "blake/poems.txt", "notes.txt"]),
    ("*/*.txt", ["austen/emma.txt", "blake/poems.txt"]),
    ("austen/*.txt", ["austen/emma.txt"]),
    ("**/*.txt", ["austen/emma.txt", "austen/old/lady.txt", "blake/poems.txt", "notes.txt"]),
    ("austen/**/*.txt", ["austen/emma.txt", "austen/old/lady.txt"]),
    ("*/*.md", ["blake/about.md"]),
])
def test_patterns_match_paths_relative_to_the_directory(tmp_path, pattern, expected):
    for name in ("austen/emma.txt", "austen/old/lady.txt", "blake/poems.txt", "blake/about.md",
                 "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    documents = TextDirectory(str(tmp_path), pattern=pattern, label_from="folder").documents()
    assert [d.name for d in documents] == expected


def test_a_pattern_that_matches_nothing_says_how_patterns_match(tmp_path):
    (tmp_path / "austen").mkdir()
    (tmp_path / "austen" / "emma.md").write_text("text")
    with pytest.raises(ToolkitError, match=r"no files matching '\*/\*.txt' under .*relative to "
                                           r"corpus.path"):
        TextDirectory(str(tmp_path), pattern="*/*.txt").files()


def test_json_lines_and_csv_records(tmp_path):
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"text": "It is a truth", "author": "austen", "id": "a1"}\n\n'
                     '{"text": "Tyger Tyger", "author": "blake"}\n')
    documents = list(JsonLines(str(jsonl), label_field="author", name_field="id").documents())
    assert [(d.text, d.label, d.name) for d in documents] == [
        ("It is a truth", "austen", "a1"), ("Tyger Tyger", "blake", "texts.jsonl:3")]
    table = tmp_path / "texts.csv"
    table.write_text('text,label\n"Call me Ishmael, said he.",melville\n"Sing, O muse",\n')
    rows = list(CsvFile(str(table)).documents())
    assert [(d.text, d.label) for d in rows] == [("Call me Ishmael, said he.", "melville"),
                                                 ("Sing, O muse", None)]


def test_bad_records_name_the_file_and_line(tmp_path):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(ToolkitError, match=r"bad.jsonl:2: JSONL record has no text in field "
                                           r"'text' \(fields: body\); set corpus.text_field"):
        list(JsonLines(str(jsonl)).documents())
    jsonl.write_text("{not json}\n")
    with pytest.raises(ToolkitError, match="bad.jsonl:1: not valid JSON"):
        list(JsonLines(str(jsonl)).documents())
    with pytest.raises(ToolkitError, match="corpus file not found"):
        list(CsvFile(str(tmp_path / "missing.csv")).documents())


CARDS = sorted((Path(__file__).parents[1] / "corpora").glob("*.toml"))


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_each_corpus_card_resolves_and_says_where_its_corpus_comes_from(card):
    import tomllib

    from toolkit.config.schema import resolve_component
    from toolkit.plugins import registry

    data = tomllib.loads(card.read_text())
    for key in ("name", "description", "source", "licence", "labels"):
        assert data.get(key), f"{card.name}: {key} is missing"
    resolve_component("corpus", data["corpus"], registry(), str(card))


def test_the_tinyshakespeare_card_matches_the_reader():
    import tomllib

    from toolkit.default_plugins import corpora

    card = tomllib.loads((Path(__file__).parents[1] / "corpora" / "tinyshakespeare.toml")
                         .read_text())
    assert (card["source"], card["sha256"]) == (corpora.URL, corpora.SHA256)
    assert len(CARDS) >= 3
