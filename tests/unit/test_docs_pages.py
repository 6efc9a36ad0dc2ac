"""The docs pages and the README against the code: every algorithm page lists every config field with
its default, the README stays short and its links resolve, the API page names all of ``pgrl.__all__``."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import pgrl

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def format_default(value) -> str:
    """How an algorithm page writes a field's default (the same rule the pages were written with)."""
    if isinstance(value, BaseModel):
        return f"`{type(value).__name__}()`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value is None:
        return "`None`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def field_table(page: Path) -> dict[str, str]:
    """field -> default cell of the page's "Hyperparameters" table (rows whose first cell is `name`)."""
    text = page.read_text()
    section = text.split("## Hyperparameters", 1)
    assert len(section) == 2, f"{page.name} has no '## Hyperparameters' section"
    body = section[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z_]+)`", cells[0]) if len(cells) >= 2 else None
        if match:
            assert match.group(1) not in rows, f"{page.name} lists {match.group(1)} twice"
            rows[match.group(1)] = cells[1]
    return rows


@pytest.mark.parametrize("name", sorted(pgrl.ALGORITHMS))
def test_algorithm_page_lists_every_config_field_with_its_default(name):
    config = pgrl.ALGORITHMS[name].config_class
    rows = field_table(DOCS / "algorithms" / f"{name}.md")
    assert sorted(rows) == sorted(config.model_fields), f"docs/algorithms/{name}.md's fields differ from the model's"
    for field, info in config.model_fields.items():
        assert rows[field] == format_default(info.default), f"docs/algorithms/{name}.md: {field}'s default"


@pytest.mark.parametrize("name", sorted(pgrl.ALGORITHMS))
def test_algorithm_page_names_every_preset(name):
    table = yaml.safe_load((resources.files("pgrl") / "presets" / f"{name}.yaml").read_text()) or {}
    text = (DOCS / "algorithms" / f"{name}.md").read_text()
    for env_id, presets in table.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{env_id}` |")), None)
        assert row is not None, f"docs/algorithms/{name}.md has no preset row for {env_id}"
        for preset in presets:
            assert f"`{preset}`" in row, f"docs/algorithms/{name}.md: {env_id} lacks preset {preset}"


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    listed = set(re.findall(r":\s*([\w/]+\.md)\s*$", config, flags=re.M))
    assert pages == listed


def test_api_page_names_every_public_symbol():
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^::: pgrl\.(\w+)\s*$", text, flags=re.M))
    assert documented == set(pgrl.__all__)


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local), "the README links into docs/"
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
