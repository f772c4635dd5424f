"""The docs describe what the code registers."""

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
                assert f"`{key}" in reference, f"{family} {name}: key {key!r} undocumented"
    for section, spec in PLAIN_SECTIONS.items():
        for key in params.parameters(spec):
            assert f"`{key}`" in reference, f"[{section}] {key} undocumented"
