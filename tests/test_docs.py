"""The docs describe what the code registers."""

import re
from pathlib import Path

from toolkit import params
from toolkit.config import PLAIN_SECTIONS
from toolkit.plugins import registry

DOCS = Path(__file__).parents[1] / "docs"


def test_config_reference_names_every_builtin_component_and_key():
    reference = (DOCS / "config.md").read_text()
    for family, components in registry().components.items():
        for name, component in components.items():
            if not component.plugin.startswith("toolkit."):
                continue
            assert f"`{name}`" in reference, f"{family} {name!r} missing from docs/config.md"
            for key in params.parameters(component.factory):
                assert documented(key, reference), f"{family} {name}: key {key!r} undocumented"
    for section, spec in PLAIN_SECTIONS.items():
        for key in params.parameters(spec):
            assert documented(key, reference), f"[{section}] {key} undocumented"


def documented(key, text):
    """``key`` appears as `key` or `key = value` in the text."""
    return re.search(rf"`{re.escape(key)}( = [^`]*)?`", text) is not None


def test_the_nltk_plugin_readme_names_every_component_and_its_keys():
    readme = (Path(__file__).parents[1] / "plugins" / "toolkit-nltk" / "README.md").read_text()
    for components in registry().components.values():
        for name, component in components.items():
            if component.plugin != "nltk":
                continue
            assert f"`{name}`" in readme
            for key in params.parameters(component.factory):
                assert documented(key, readme), f"{name}: key {key!r} not in the README"
