"""The docs describe what the code registers, each key where its component is described."""

import re
from pathlib import Path

import pytest

from toolkit.config import params
from toolkit.config.schema import COMPONENT_SECTIONS, PLAIN_SECTIONS
from toolkit.plugins import registry

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
SECTION_OF_FAMILY = {family: section for section, (family, _) in COMPONENT_SECTIONS.items()}
SECTION_OF_FAMILY["preprocessor"] = "[preprocess]"


def documented(key, text):
    """``key`` appears as `key` or `key = value` in the text."""
    return re.search(rf"`{re.escape(key)}( = [^`]*)?`", text) is not None


def section(text: str, name: str) -> str:
    """The part of a Markdown file under the ``## `[name]` `` heading, up to the next heading."""
    match = re.search(rf"^## `\[{re.escape(name)}\]`.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section [{name}] in the reference"
    return match.group(1)


def component_row(text: str, name: str) -> str:
    """The table row that describes component ``name``: ``| `name` | keys | what |``."""
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"expected one table row for `{name}`, found {len(rows)}"
    return rows[0]


def test_documented_accepts_only_the_key_itself():
    assert documented("units", "`units = 256`, `layers`")
    assert documented("layers", "`units = 256`, `layers`")
    assert not documented("unit", "`units = 256`")
    assert not documented("units", "units = 256")


def builtin_components():
    return [(family, name, component) for family, components in registry().components.items()
            if family != "command" for name, component in components.items()
            if component.plugin.startswith("toolkit.")]


@pytest.mark.parametrize("family, name, component", builtin_components(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_each_builtin_component_row_documents_its_own_keys(family, name, component):
    reference = (DOCS / "config.md").read_text()
    row = component_row(section(reference, SECTION_OF_FAMILY[family]), name)
    for key in params.parameters(component.factory):
        assert documented(key, row), f"{family} {name}: key {key!r} is not in its row"


def test_each_plain_section_documents_its_keys_in_its_own_section():
    reference = (DOCS / "config.md").read_text()
    for name, spec in PLAIN_SECTIONS.items():
        text = section(reference, name)
        for key in params.parameters(spec):
            assert re.search(rf"^\| `{re.escape(key)}` \|", text, re.M), \
                f"[{name}] {key} has no row in its section"


def test_the_nltk_plugin_readme_names_every_component_and_its_keys():
    readme = (ROOT / "plugins" / "toolkit-nltk" / "README.md").read_text()
    for components in registry().components.values():
        for name, component in components.items():
            if component.plugin != "nltk":
                continue
            row = component_row(readme, name)
            for key in params.parameters(component.factory):
                assert documented(key, row), f"{name}: key {key!r} not in its README row"


def test_generated_docs_are_up_to_date():
    from toolkit import docgen

    assert docgen.stale() == [], "run `python -m toolkit.docgen` and commit the result"


def test_the_module_map_names_every_module_and_has_no_cycle():
    from toolkit import docgen

    graph = docgen.import_graph()
    on_disk = {p.stem for p in docgen.PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert on_disk | set(docgen.GROUPED) == set(graph)
    diagram = (DOCS / "architecture.md").read_text()
    for node in graph:
        assert f"  {node}[" in diagram
    visiting, done = set(), set()

    def visit(node, path):
        assert node not in visiting, f"import cycle: {' -> '.join(path + [node])}"
        if node in done:
            return
        visiting.add(node)
        for target in graph[node]:
            visit(target, path + [node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


def test_every_hook_and_contract_is_in_the_plugin_guide():
    from toolkit import docgen, hookspecs

    guide = (DOCS / "plugins.md").read_text()
    for hook in (n for n in dir(hookspecs) if n.startswith("register_")):
        assert f"`{hook}(register)`" in guide
    for name in docgen.CONTRACTS:
        cls = getattr(hookspecs, name)
        assert f"`toolkit.hookspecs.{name}`" in guide
        for member, value in vars(cls).items():
            if callable(value) and not member.startswith("_"):
                assert f"- `{member}(" in guide, f"{name}.{member} is not in docs/plugins.md"


def test_every_test_named_in_the_errors_matrix_exists():
    matrix = (DOCS / "errors.md").read_text()
    references = re.findall(r"`(test_\w+\.py)::(test_\w+)", matrix)
    references += [(m.group(1), m.group(2)) for m in
                   re.finditer(r"`(test_\w+\.py)::test_\w+`, `::(test_\w+)`", matrix)]
    assert len(references) > 20
    for file, name in references:
        source = (ROOT / "tests" / file).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{file}::{name} does not exist"
